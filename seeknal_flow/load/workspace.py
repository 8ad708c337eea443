"""A loaded project: config, specs, DAG and the engine's memory settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from operators.errors import EngineError
from operators.memory import MemoryConfig, parse_memory_limit
from seeknal_flow.errors import ProjectError
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.discovery import discover
from seeknal_flow.load.project import Project


@dataclass
class Workspace:
    project: Project

    @classmethod
    def open(cls, project_dir: str | Path | None = None) -> Workspace:
        """Find the project (walking up from cwd unless ``project_dir``) and load it."""
        return cls(Project.find(Path(project_dir) if project_dir else None))

    @cached_property
    def dag(self) -> Dag:
        return Dag(discover(self.project))

    def memory(self, memory_limit: str | None = None, threads: int | None = None) -> MemoryConfig:
        """CLI flags win over the environment and ``seeknal_project.yml`` (already checked as it loaded)."""
        config = self.project.config
        limit = memory_limit or config.memory_limit
        try:
            limit_bytes = parse_memory_limit(limit) if limit else None
        except EngineError as e:  # only the flag can be malformed here
            raise ProjectError(f"--memory-limit: {e}") from e
        return MemoryConfig(
            memory_limit=limit_bytes,
            threads=threads or config.threads,
            spill_dir=self.project.tmp,
        )
