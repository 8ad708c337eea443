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
        # Imported inside the boundary: a package missing from the node's environment
        # must come back as a reported failure, not a crash before the report exists.
        import msgspec
        import pyarrow as pa

        from operators.memory import MemoryConfig
        from operators.python_call import as_reader, load_function
        from seeknal_flow.frames.frame import FeatureFrame
        from seeknal_flow.run.context import Context
        from seeknal_flow.run.isolation_messages import IsolatedCall

        stdin = sys.stdin.buffer
        call = msgspec.json.decode(stdin.readline(), type=IsolatedCall)
        inputs = {}
        for ref, info in call.inputs.items():
            if info.paths is not None:
                paths = [Path(p) for p in info.paths]
                data = paths[0] if len(paths) == 1 else paths
            else:
                data = pa.ipc.open_stream(stdin).read_all()
            inputs[ref] = FeatureFrame(data, node_id=ref, entity=info.entity, join_keys=info.join_keys,
                                       event_time_col=info.event_time_col)
        settings = call.memory
        memory = MemoryConfig(memory_limit=settings.memory_limit, threads=settings.threads,
                              spill_dir=Path(settings.spill_dir) if settings.spill_dir else None)
        path = Path(call.path)
        fn = load_function(path, call.function)
        ctx = Context(call.node_id, inputs, json.loads(bytes(call.params)), memory, target=call.target)
        try:
            result = fn(ctx)
        except Exception as e:  # the user's code: any failure is reported, with its traceback tail
            frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename) == path] or \
                traceback.extract_tb(e.__traceback__)[-2:]
            tail = "".join(traceback.format_list(frames[-3:])) + "".join(traceback.format_exception_only(type(e), e))
            _report(f"{type(e).__name__}: {e}", tail.rstrip())
            return
        reader = as_reader(result, call.node_id)
        with pa.ipc.new_stream(out, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
        out.flush()
        ctx.close()
    except Exception as e:  # process boundary: an import or engine failure in the child is reported
        _report(f"{type(e).__name__}: {e}", traceback.format_exc(limit=-3).rstrip())


def _report(message: str, tail: str) -> None:
    # json, not msgspec: this also reports a failure to import msgspec itself.
    from seeknal_flow.run.isolation_messages import ERROR_MARK

    sys.stderr.write("\n" + ERROR_MARK + json.dumps({"message": message, "tail": tail}) + "\n")
    sys.stderr.flush()
    sys.exit(1)
