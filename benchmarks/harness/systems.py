"""How each system runs a task as a separate process.

- ``seeknal_flow``: SOA and PIT tasks call the engine's operators
  (``operators.soa.execute.execute_soa``, ``operators.asof.join.asof_join``) in a child
  interpreter; the pipeline is ``seeknal run --full --project P`` on a real project.
- ``duckdb`` / ``polars``: hand-written, in a child interpreter (Polars is optional:
  skipped with a note when it is not importable).
- ``seeknal``: seeknal 2.13 from PyPI in its own virtual environment,
  ``benchmarks/.venvs/seeknal213`` (``python -m benchmarks setup-seeknal`` creates
  it); SOA and PIT tasks call its API (``SecondOrderAggregator``,
  ``FeatureFrame.pit_join``) in that environment's interpreter, the pipeline is its
  ``seeknal run --full`` on a project of its own format.

Every child gets the same environment: bytecode cached under
``benchmarks/.venvs/pycache`` (``PYTHONDONTWRITEBYTECODE`` unset), which is what a
user has; a warm-up (imports, ``--help``) runs before anything is timed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import projects
from benchmarks.harness.tasks import outputs_of

REPO = Path(__file__).resolve().parent.parent.parent
VENVS = REPO / "benchmarks" / ".venvs"
SEEKNAL213_VENV = VENVS / "seeknal213"
SEEKNAL213_VERSION = "2.13.0"
LABELS = {"seeknal_flow": "seeknal-flow", "duckdb": "DuckDB", "polars": "Polars", "seeknal": "seeknal 2.13"}
ORDER = ("seeknal_flow", "duckdb", "polars", "seeknal")


def base_env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(VENVS / "pycache")
    return env


def _cleared_outputs(root: Path, files: dict[str, str], parts) -> dict[str, Path]:
    """A project's output file per part, each removed so a failed run cannot pass for a good one."""
    outputs = {p: root / "target" / "intermediate" / files[p] for p in parts}
    for path in outputs.values():
        path.unlink(missing_ok=True)
    return outputs


@dataclass
class Data:
    tx: Path
    spine: Path


@dataclass
class RunSpec:
    """One measured command and where its outputs land."""

    cmd: list[str]
    cwd: Path
    env: dict
    outputs: dict[str, Path]
    cleanup: list[Path] = field(default_factory=list)  # removed after the run
    spill: Path | None = None  # where it spills: sampled for the memory timeline


class System:
    name = ""

    @property
    def label(self) -> str:
        return LABELS[self.name]

    def missing(self) -> str | None:
        """Why this system cannot run here, or None."""
        return None

    def python(self) -> str:
        return sys.executable

    def env(self) -> dict:
        return base_env()

    def warmup(self) -> list[list[str]]:
        return [[self.python(), "-m", "benchmarks.harness.child", self.name, "warmup"]]

    def prepare(self, work: Path, data: Data, parts: tuple[str, ...], memory_limit: str | None) -> None:
        """Set up what the pipeline task needs (projects), once per scale."""

    def spec(self, task: str, work: Path, data: Data, parts: tuple[str, ...], memory_limit: str | None) -> RunSpec:
        out = work / self.name / task
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        cmd = [self.python(), "-m", "benchmarks.harness.child", self.name, task, "--tx", str(data.tx),
               "--spine", str(data.spine), "--out", str(out), "--spill", str(out / "spill"),
               "--parts", ",".join(parts)]
        if memory_limit:
            cmd += ["--memory-limit", memory_limit]
        outputs = {o: out / f"{o}.parquet" for o in outputs_of(task, parts)}
        return RunSpec(cmd, REPO, self.env(), outputs, spill=out / "spill")

    def stage_times(self, stdout: str) -> dict[str, float]:
        """Seconds per pipeline stage, from the run's output (CLI systems)."""
        return {}


class SeeknalFlow(System):
    name = "seeknal_flow"

    def cli(self) -> str:
        # The console script next to this interpreter, not a pyenv shim (a bash script).
        script = Path(sys.executable).parent / "seeknal"
        return str(script) if script.exists() else (shutil.which("seeknal") or "seeknal")

    def warmup(self) -> list[list[str]]:
        return [*super().warmup(), [self.cli(), "--help"]]

    def _project(self, work: Path) -> Path:
        return work / "seeknal_flow" / "project"

    def prepare(self, work, data, parts, memory_limit) -> None:
        root = self._project(work)
        root.parent.mkdir(parents=True, exist_ok=True)
        projects.write_flow_project(root, data.tx, data.spine, seeknal=self.cli(), parts=parts)

    def spec(self, task, work, data, parts, memory_limit) -> RunSpec:
        if task != "pipeline":
            return super().spec(task, work, data, parts, memory_limit)
        root = self._project(work)
        outputs = _cleared_outputs(root, projects.FLOW_OUTPUTS, parts)
        cmd = [self.cli(), "run", "--full", "-v", "--project", str(root)]  # -v: per-node times
        if memory_limit:
            cmd += ["--memory-limit", memory_limit]
        return RunSpec(cmd, REPO, self.env(), outputs, spill=root / "target" / "tmp")

    def stage_times(self, stdout: str) -> dict[str, float]:
        from benchmarks.bench_foundation import node_seconds

        nodes, done = node_seconds(stdout)
        if done is not None:
            nodes["scheduler total"] = done
        return nodes


class DuckDB(System):
    name = "duckdb"

    def missing(self) -> str | None:
        return None if importlib.util.find_spec("duckdb") else "duckdb is not importable"


class Polars(System):
    name = "polars"

    def missing(self) -> str | None:
        if importlib.util.find_spec("polars") is None:
            return "polars is not installed here (`pip install polars`, or `pip install -e '.[bench]'`)"
        return None


class Seeknal213(System):
    name = "seeknal"

    def python(self) -> str:
        return str(SEEKNAL213_VENV / "bin" / "python")

    def cli(self) -> str:
        return str(SEEKNAL213_VENV / "bin" / "seeknal")

    def env(self) -> dict:
        env = base_env()
        env["VIRTUAL_ENV"] = str(SEEKNAL213_VENV)
        env["PATH"] = f"{SEEKNAL213_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        # Its state database and config live under ~/.seeknal otherwise.
        env["SEEKNAL_BASE_CONFIG_PATH"] = str(VENVS / "seeknal213-home")
        env.pop("PYTHONPATH", None)
        return env

    def missing(self) -> str | None:
        if not Path(self.cli()).exists():
            return (f"seeknal 2.13 is not installed: `python -m benchmarks setup-seeknal` creates "
                    f"{SEEKNAL213_VENV.relative_to(REPO)} (uv venv + uv pip install seeknal=={SEEKNAL213_VERSION})")
        if shutil.which("uv", path=self.env()["PATH"]) is None:
            return "seeknal 2.13 runs Python nodes with `uv run`, and uv is not on PATH"
        r = subprocess.run([self.python(), "-c", "import importlib.metadata as m; print(m.version('seeknal'))"],
                           capture_output=True, text=True, env=self.env())
        if r.returncode != 0 or r.stdout.strip() != SEEKNAL213_VERSION:
            return f"{SEEKNAL213_VENV} holds seeknal {r.stdout.strip() or '?'} ({r.stderr.strip()[-200:]})"
        return None

    def warmup(self) -> list[list[str]]:
        return [*super().warmup(), [self.cli(), "--help"]]

    def _project(self, work: Path) -> Path:
        # Its project name is the folder name, and its feature store goes to /tmp/feature_store/<name>.
        return work / "seeknal" / f"bench_s213_{os.getpid()}"

    def prepare(self, work, data, parts, memory_limit) -> None:
        root = self._project(work)
        projects.write_seeknal213_project(root, data.tx, data.spine, seeknal=self.cli(), env=self.env(), parts=parts)

    def spec(self, task, work, data, parts, memory_limit) -> RunSpec:
        if task != "pipeline":
            return super().spec(task, work, data, parts, memory_limit)
        root = self._project(work)
        outputs = _cleared_outputs(root, projects.SEEKNAL213_OUTPUTS, parts)
        return RunSpec([self.cli(), "run", "--full", "-v"], root, self.env(), outputs,
                       cleanup=projects.seeknal213_feature_store(root))

    def stage_times(self, stdout: str) -> dict[str, float]:
        import re

        times, current = {}, None
        for line in stdout.splitlines():
            if m := re.match(r"^\d+/\d+: (\S+) \[RUNNING\]", line):
                current = m.group(1)
            elif (m := re.match(r"^\s+SUCCESS in ([\d.]+)s", line)) and current:
                times[current] = float(m.group(1))
            elif m := re.match(r"^\s+Duration:\s+([\d.]+)s", line):
                times["scheduler total"] = float(m.group(1))
        return times


SYSTEMS = {s.name: s for s in (SeeknalFlow(), DuckDB(), Polars(), Seeknal213())}


def install_seeknal213() -> str:
    """Create the seeknal 2.13 environment with uv; returns uv's last lines."""
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("uv is not on PATH (`pip install uv`)")
    VENVS.mkdir(parents=True, exist_ok=True)
    if not (SEEKNAL213_VENV / "bin" / "python").exists():
        subprocess.run([uv, "venv", str(SEEKNAL213_VENV), "--python", f"{sys.version_info[0]}.{sys.version_info[1]}"],
                       check=True)
    env = dict(os.environ, VIRTUAL_ENV=str(SEEKNAL213_VENV))
    r = subprocess.run([uv, "pip", "install", f"seeknal=={SEEKNAL213_VERSION}"], env=env, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise SystemExit(f"uv pip install seeknal=={SEEKNAL213_VERSION} failed:\n{r.stderr[-2000:]}")
    return "\n".join((r.stderr or r.stdout).strip().splitlines()[-3:])
