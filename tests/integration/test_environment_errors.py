"""Environment failures (disk full, read-only target, undecodable files, YAML bombs) are reported as
what they are: exit 1, one line naming the node or file and the OS reason, no "internal error"."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import operators.sink
from seeknal_flow.plan.run_state import RunState


def _one_line(r, *needles: str) -> str:
    assert r.code == 1, r.text
    assert "Traceback" not in r.text and "internal error" not in r.text, r.text
    line = next(ln for ln in r.err.splitlines() if ln.startswith("error:"))
    for needle in needles:
        assert needle in r.err, (needle, r.err)
    return line


def test_disk_full_while_writing_a_node_names_the_node_and_the_os_reason(seeknal, example_project, monkeypatch):
    def full(tmp: Path, final: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(final))

    monkeypatch.setattr(operators.sink, "replace_path", full)
    r = seeknal("run", cwd=example_project)
    _one_line(r, "source.churn_labels (seeknal/sources/churn_labels.yml:2) failed", "No space left on device [ENOSPC]", "free some disk space")
    assert not list((example_project / "target").rglob(".*.tmp"))  # the half-written file is gone


def test_a_read_only_target_is_an_environment_error(seeknal, example_project, monkeypatch):
    def read_only(self, path: Path) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(RunState, "save", read_only)
    r = seeknal("run", cwd=example_project)
    _one_line(r, "run_state.json", "Read-only file system [EROFS]", "read-only")


def test_a_node_file_that_is_not_utf8_names_the_file(seeknal, example_project):
    (example_project / "seeknal/sources/latin1.yml").write_bytes(
        b"kind: source\nname: latin1\ndescription: caf\xe9\nsource: csv\ntable: data/churn_labels.csv\n")
    r = seeknal("plan", cwd=example_project)
    _one_line(r, "seeknal/sources/latin1.yml: not UTF-8 text", "0xe9", "save the file as UTF-8")


def test_a_yaml_alias_bomb_is_refused_quickly_naming_the_file(seeknal, example_project):
    lines = ["kind: source", "name: bomb", "source: csv", "table: data/churn_labels.csv", 'a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    (example_project / "seeknal/sources/bomb.yml").write_text("\n".join(lines) + "\n")
    began = time.monotonic()
    r = seeknal("plan", cwd=example_project)
    assert time.monotonic() - began < 20
    _one_line(r, "seeknal/sources/bomb.yml", "YAML expands to more than 100,000 values")


def test_deeply_nested_yaml_is_refused(seeknal, example_project):
    (example_project / "seeknal/sources/deep.yml").write_text("kind: source\nname: deep\nx: " + "[" * 5000 + "]" * 5000)
    _one_line(seeknal("plan", cwd=example_project), "seeknal/sources/deep.yml", "nested deeper than")


def test_a_params_alias_bomb_is_refused(seeknal, example_project):
    value = "{a: &a [x, x, x, x, x, x, x, x, x, x], b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a], " \
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b], d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]}"
    _one_line(seeknal("plan", "--params", f"x={value}", cwd=example_project), "--params x", "10,000")


def test_an_unreadable_node_file_names_it_and_the_os_reason(seeknal, example_project, monkeypatch):
    real = Path.read_text

    def denied(self, *args, **kwargs):
        if self.name == "churn_labels.yml":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    _one_line(seeknal("plan", cwd=example_project), "seeknal/sources/churn_labels.yml: cannot read",
              "Permission denied [EACCES]", "permissions")


# ------------------------------------------------------------- real file systems
# A tmpfs of a few KB is a real full disk; a read-only bind mount a real read-only target.
# Mounting needs root (CAP_SYS_ADMIN), which CI's machine has.


@pytest.fixture
def mount():
    mounted: list[Path] = []

    def do(*args: str, at: Path) -> None:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs or a read-only bind needs root; CI runs as root")
        r = subprocess.run(["mount", *args, str(at)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount here ({r.stderr.strip()}); CI's machine can")
        mounted.append(at)

    yield do
    for at in reversed(mounted):
        subprocess.run(["umount", "-l", str(at)], check=False)


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", *args], cwd=root,
                          capture_output=True, text=True, timeout=120)


def test_a_really_full_disk_names_the_file_and_exits_1(example_project, mount):
    target = example_project / "target"
    target.mkdir(exist_ok=True)
    mount("-t", "tmpfs", "-o", "size=60k", "tmpfs", at=target)
    r = _run(example_project, "run")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert errors and "No space left on device [ENOSPC]" in errors[-1] and "/target/" in errors[-1], r.stderr


def test_a_really_read_only_target_is_one_line_and_keeps_the_outputs(example_project, mount):
    assert _run(example_project, "run").returncode == 0
    target = example_project / "target"
    before = {p: p.read_bytes() for p in (target / "intermediate").iterdir() if p.is_file()}
    mount("--bind", str(target), at=target)
    mount("-o", "remount,ro,bind", at=target)
    os.utime(example_project / "data" / "transactions.csv")  # something to do
    r = _run(example_project, "run", "--full")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith(
        "target/.seeknal.lock: Read-only file system [EROFS]; the file system is mounted read-only; "
        "make the project's target/ writable"), r.stderr
    assert {p: p.read_bytes() for p in before} == before
