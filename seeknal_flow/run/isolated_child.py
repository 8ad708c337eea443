"""The child side of PEP 723 isolation (see ``isolation.py``); run by ``uv run --script``.

Reads a JSON header line and any Arrow IPC inputs from stdin, calls the node
function with a regular ``Context``, writes its result as one Arrow IPC stream
to stdout. Prints go to stderr; a failure is reported after ``ERROR_MARK``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # the node's prints must not corrupt the IPC stream
    try:
        import pyarrow as pa

        from operators.memory import MemoryConfig
        from operators.python_call import as_reader, load_function
        from seeknal_flow.run.context import Context
        from seeknal_flow.frames.frame import FeatureFrame

        stdin = sys.stdin.buffer
        header = json.loads(stdin.readline())
        inputs = {}
        for ref, info in header["inputs"].items():
            if "paths" in info:
                paths = [Path(p) for p in info["paths"]]
                data = paths[0] if len(paths) == 1 else paths
            else:
                data = pa.ipc.open_stream(stdin).read_all()
            inputs[ref] = FeatureFrame(data, node_id=ref, entity=info.get("entity"),
                                       join_keys=tuple(info.get("join_keys") or ()),
                                       event_time_col=info.get("event_time_col"))
        memory = MemoryConfig(**header["memory"])
        path = Path(header["path"])
        fn = load_function(path, header["function"])
        ctx = Context(header["node_id"], inputs, header["params"], memory, target=header.get("target"))
        try:
            result = fn(ctx)
        except Exception as e:
            frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename) == path] or \
                traceback.extract_tb(e.__traceback__)[-2:]
            tail = "".join(traceback.format_list(frames[-3:])) + "".join(traceback.format_exception_only(type(e), e))
            _report(f"{type(e).__name__}: {e}", tail.rstrip())
            return
        reader = as_reader(result, header["node_id"])
        with pa.ipc.new_stream(out, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
        out.flush()
        ctx.close()
    except Exception as e:  # import or engine failure in the child
        _report(f"{type(e).__name__}: {e}", traceback.format_exc(limit=-3).rstrip())


def _report(message: str, tail: str) -> None:
    from seeknal_flow.run.isolation import ERROR_MARK

    sys.stderr.write("\n" + ERROR_MARK + json.dumps({"message": message, "tail": tail}) + "\n")
    sys.stderr.flush()
    sys.exit(1)
