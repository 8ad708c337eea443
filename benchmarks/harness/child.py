"""Entry point of a measured child process: one task of one system.

``python -m benchmarks.harness.child SYSTEM TASK --tx F --spine F --out DIR --spill DIR``
(``TASK`` ``warmup`` only imports the system's engines: compiles their bytecode
before anything is timed). Prints one JSON line: seconds spent in the task itself.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time

from benchmarks.harness import tasks


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("system", choices=sorted(tasks.ENGINE_MODULES))
    p.add_argument("task")
    p.add_argument("--tx")
    p.add_argument("--spine")
    p.add_argument("--out")
    p.add_argument("--spill")
    p.add_argument("--parts", default=",".join(tasks.PIPELINE_PARTS))
    p.add_argument("--memory-limit", default=None)
    args = p.parse_args(argv)
    if args.task == "warmup":
        for mod in tasks.ENGINE_MODULES[args.system]:
            importlib.import_module(mod)
        print(json.dumps({"task_s": 0.0}))
        return
    t0 = time.perf_counter()
    tasks.run_task(args.system, args.task, args.tx, args.spine, args.out, tuple(args.parts.split(",")),
                   args.memory_limit, args.spill)
    print(json.dumps({"task_s": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
