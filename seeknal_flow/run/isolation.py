"""PEP 723 isolation: run a Python node in an environment ``uv`` builds from its header.

Decision (``isolation`` on the node, else ``seeknal_project.yml``, else ``auto``):
``inprocess`` always runs in this process; ``uv`` always isolates; ``auto``
isolates only when a declared dependency is missing here or its installed
version does not satisfy the declared specifier.

The isolated node runs as a ``uv run --script`` of a small runner script whose
header lists the node's dependencies plus what the runner needs (pyarrow,
duckdb, msgspec) unless the node pins those itself; uv caches that environment
by the script, which is named by the dependency set. seeknal-flow reaches the
environment through a folder holding only links to its two packages, so no
host package can shadow the node's declared versions. Inputs go to the child
as Parquet paths (node outputs already are Parquet) or, for in-memory inputs,
as Arrow IPC streams on stdin; the result comes back as an Arrow IPC stream on
stdout. The node's prints arrive on stderr.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import msgspec
import pyarrow as pa

import operators
from operators.atomic import write_atomic
from operators.errors import EngineError
from operators.memory import MemoryConfig
from operators.python_call import UserCodeError
from seeknal_flow.authoring.specs import Isolation, PythonCode
from seeknal_flow.run.isolation_messages import ERROR_MARK, FrameMeta, IsolatedCall, MemorySettings, NodeFailure

RUNNER_NEEDS = ("pyarrow", "duckdb", "msgspec")
# The folders of the two packages the child imports: seeknal_flow/ (this file's grandparent) and operators/.
_PACKAGES = (Path(__file__).resolve().parents[1], Path(operators.__file__).resolve().parent)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_name(requirement: str) -> str:
    """``"scikit-learn>=1.4"`` -> ``"scikit-learn"``.

    >>> requirement_name("pandas[pyarrow] >= 2")
    'pandas'
    """
    m = _NAME.match(requirement)
    return m.group(1) if m else requirement


def satisfied_here(requirement: str) -> bool:
    """Is ``requirement`` installed in this interpreter at a matching version?"""
    name = requirement_name(requirement)
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    # A declared dependency; imported here because only a node with PEP 723 dependencies asks.
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(requirement).specifier.contains(version, prereleases=True)
    except InvalidRequirement:
        return False


def should_isolate(code: PythonCode, mode: Isolation) -> bool:
    if mode == Isolation.INPROCESS:
        return False
    if mode == Isolation.UV:
        return True
    return not all(satisfied_here(r) for r in code.dependencies)


def find_uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        candidate = Path(sys.executable).parent / "uv"
        if candidate.exists():
            return str(candidate)
        raise EngineError("this node runs isolated (PEP 723 dependencies) but `uv` is not installed: pip install uv")
    return uv


def runner_script(code: PythonCode, folder: Path) -> Path:
    """The runner script for this dependency set (stable name, so uv reuses its environment)."""
    declared = {requirement_name(r).lower().replace("_", "-") for r in code.dependencies}
    deps = list(code.dependencies) + [d for d in RUNNER_NEEDS if d not in declared]
    listed = "".join(f"#   {json.dumps(d)},\n" for d in deps)
    python = f'# requires-python = {json.dumps(code.requires_python)}\n' if code.requires_python else ""
    text = (
        "# /// script\n"
        f"{python}"
        "# dependencies = [\n"
        f"{listed}"
        "# ]\n"
        "# ///\n"
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from seeknal_flow.run.isolated_child import main\n"
        "main()\n"
    )
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = folder / f"runner_{digest}.py"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text.encode("utf-8"))
    return path


def _package_links() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="seeknal-pkgs-"))
    for source in _PACKAGES:
        (folder / source.name).symlink_to(source, target_is_directory=True)
    return folder


class IsolatedCallOperator:
    """Run a node function in a uv-built environment; its result streams back as Arrow IPC."""

    def __init__(self, code: PythonCode, *, node_id: str, inputs: dict, params: dict, cache_dir: Path,
                 memory: MemoryConfig, target: Path | None = None) -> None:
        self.target = target
        self.code = code
        self.label = node_id
        self.inputs = inputs  # ref id -> FeatureFrame
        self.params = params
        self.cache_dir = cache_dir
        self.memory = memory
        self.output = ""
        self._proc: subprocess.Popen | None = None
        self._reader: pa.RecordBatchReader | None = None
        self._links: Path | None = None
        self._stderr = None

    def describe(self) -> str:
        return f"IsolatedPythonCall({self.label}, deps: {', '.join(self.code.dependencies) or 'none'})"

    def _start(self) -> pa.RecordBatchReader:
        if self._reader is not None:
            return self._reader
        uv = find_uv()
        script = runner_script(self.code, self.cache_dir)
        self._links = _package_links()
        inputs: dict[str, FrameMeta] = {}
        in_memory = []
        for ref, frame in self.inputs.items():
            paths = tuple(str(p) for p in frame.paths) if frame.paths is not None else None
            inputs[ref] = FrameMeta(entity=frame.entity, join_keys=tuple(frame.join_keys),
                                    event_time_col=frame.event_time_col, paths=paths)
            if paths is None:
                in_memory.append(frame.to_arrow())
        memory = self.memory
        call = IsolatedCall(
            path=self.code.path, function=self.code.function, node_id=self.label,
            params=msgspec.Raw(json.dumps(self.params, default=str).encode()),
            memory=MemorySettings(memory_limit=memory.memory_limit, threads=memory.threads,
                                  spill_dir=str(memory.spill_dir) if memory.spill_dir else None),
            target=str(self.target) if self.target else None, inputs=inputs,
        )
        self._stderr = tempfile.TemporaryFile()
        cmd = [uv, "run", "--quiet", "--python", sys.executable, "--script", str(script), str(self._links)]
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        except OSError as e:
            raise EngineError(f"{self.label}: cannot start uv: {e}") from e
        try:
            self._proc.stdin.write(msgspec.json.encode(call) + b"\n")
            for table in in_memory:
                with pa.ipc.new_stream(self._proc.stdin, table.schema) as writer:
                    writer.write_table(table)
            self._proc.stdin.close()
            self._reader = pa.ipc.open_stream(self._proc.stdout)
        except (BrokenPipeError, pa.ArrowInvalid, OSError):
            self._fail()
        return self._reader

    def _fail(self) -> None:
        """The child ended without a result: raise its error with the traceback tail."""
        self._proc.wait()
        text = self._read_stderr()
        self._cleanup()
        if ERROR_MARK in text:
            before, _, after = text.partition(ERROR_MARK)
            self.output = before
            failure = msgspec.json.decode(after.strip().splitlines()[0], type=NodeFailure)
            raise UserCodeError(failure.message, failure.tail)
        tail = "\n".join(text.strip().splitlines()[-8:])
        raise EngineError(f"{self.label}: isolated run failed (exit {self._proc.returncode}): {tail or 'no output'}")

    def _read_stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def _cleanup(self) -> None:
        if self._links is not None:
            shutil.rmtree(self._links, ignore_errors=True)
            self._links = None

    @property
    def schema(self) -> pa.Schema:
        return self._start().schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        reader = self._start()
        try:
            while True:
                try:
                    yield reader.read_next_batch()
                except StopIteration:
                    break
                except (pa.ArrowInvalid, OSError):
                    self._fail()
            if self._proc.wait() != 0:
                self._fail()
            self.output = self._read_stderr()
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._cleanup()
