"""Call a user's node function in-process and stream its result as Arrow.

The function receives an opaque context object and may return a pandas
DataFrame, a pyarrow Table / RecordBatch / RecordBatchReader, a DuckDB
relation, a polars DataFrame, or anything speaking the Arrow C stream protocol
(``FeatureFrame`` does). Nothing is converted to pandas here.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from operators.errors import EngineError, SeeknalError
from operators.scan import BATCH_ROWS, first_line

ACCEPTED = (
    "a pandas DataFrame, pyarrow Table or RecordBatchReader, DuckDB relation, "
    "polars DataFrame or FeatureFrame"
)


class UserCodeError(EngineError):
    """The user's function raised; ``tail`` is the traceback through the user's file."""

    def __init__(self, message: str, tail: str) -> None:
        super().__init__(message)
        self.tail = tail


def load_function(path: Path, function: str) -> Callable:
    """Import ``path`` as a private module and return its ``function``."""
    # The content is part of the name: an edited file is a new module, even
    # within one long-lived process (tests, a notebook driving the API).
    digest = hashlib.sha1(str(path).encode() + path.read_bytes()).hexdigest()[:12]
    module_name = f"_seeknal_node_{path.stem}_{digest}"
    if module_name in sys.modules:
        return getattr(sys.modules[module_name], function)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # let a node import its sibling helper modules
    try:
        spec.loader.exec_module(module)
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        raise EngineError(
            f"cannot import {path.name}: {first_line(str(e))}; install '{missing}' or declare it "
            "in the file's PEP 723 header"
        ) from e
    except Exception as e:  # the user-code boundary: whatever the user's module raises is theirs
        raise UserCodeError(f"importing {path.name} raised {type(e).__name__}: {e}", _tail(e, path)) from e
    finally:
        sys.path.remove(str(path.parent))
    sys.modules[module_name] = module
    return getattr(module, function)


def as_reader(result: Any, what: str) -> pa.RecordBatchReader:
    """Wrap any accepted return value as a RecordBatchReader (lazy where the value is)."""
    if isinstance(result, pa.RecordBatchReader):
        return result
    if isinstance(result, pa.Table):
        return result.to_reader(BATCH_ROWS)
    if isinstance(result, pa.RecordBatch):
        return pa.Table.from_batches([result]).to_reader()
    module = type(result).__module__ or ""
    if module.startswith("pandas") and hasattr(result, "columns"):
        if any(name is not None for name in result.index.names):
            result = result.reset_index()  # a named index (e.g. after groupby) is data
        return pa.Table.from_pandas(result, preserve_index=False).to_reader(BATCH_ROWS)
    if module.startswith("duckdb") and hasattr(result, "to_arrow_reader"):
        return result.to_arrow_reader(BATCH_ROWS)
    if module.startswith("polars") and hasattr(result, "to_arrow"):
        return result.to_arrow().to_reader(BATCH_ROWS)
    if hasattr(result, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(result)
    kind = "None" if result is None else type(result).__name__
    raise EngineError(f"{what} returned {kind}; return {ACCEPTED}")


class PythonCallOperator:
    """Run ``fn(ctx)`` once, then stream its result. Prints are captured in ``output``."""

    def __init__(self, fn: Callable, ctx: Any, *, label: str, path: Path | None = None) -> None:
        self.fn = fn
        self.ctx = ctx
        self.label = label
        self.path = path
        self.output = ""
        self._reader: pa.RecordBatchReader | None = None

    def describe(self) -> str:
        return f"PythonCall({self.label})"

    def _call(self) -> pa.RecordBatchReader:
        if self._reader is None:
            buffer = io.StringIO()
            try:
                with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                    result = self.fn(self.ctx)
            except SeeknalError:  # raised by our own API inside the node (ctx.save_model, ctx.ref): already one line
                raise
            except Exception as e:  # the user-code boundary: whatever the node function raises is theirs
                raise UserCodeError(f"{type(e).__name__}: {e}", _tail(e, self.path)) from e
            finally:
                self.output = buffer.getvalue()
            try:
                self._reader = as_reader(result, self.label)
            except EngineError:
                raise
            except Exception as e:  # a lazy DuckDB relation runs here: its errors are the user's
                raise EngineError(f"{self.label}: {first_line(str(e))}") from e
        return self._reader

    @property
    def schema(self) -> pa.Schema:
        return self._call().schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        reader = self._call()
        while True:
            try:
                yield reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowException, RuntimeError) as e:
                raise EngineError(f"reading the result of {self.label}: {first_line(str(e))}") from e
            except Exception as e:  # a relation failing lazily (e.g. DuckDB binder errors)
                raise EngineError(f"{self.label}: {first_line(str(e))}") from e


def _tail(error: BaseException, path: Path | None, lines: int = 6) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    if path is not None:
        user = [f for f in frames if Path(f.filename) == path]
        frames = user or frames[-2:]
    text = "".join(traceback.format_list(frames[-3:]))
    text += "".join(traceback.format_exception_only(type(error), error))
    return "\n".join(text.rstrip().splitlines()[-lines * 2 :])
