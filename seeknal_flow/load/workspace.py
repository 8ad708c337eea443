"""A loaded project: config, specs, DAG and the engine's memory settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from operators.errors import EngineError
from operators.memory import MemoryConfig, parse_size
from seeknal_flow.errors import ProjectError
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.discovery import discover
from seeknal_flow.load.project import ENV_MEMORY_LIMIT, PROJECT_FILE, Project


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
        """CLI flags win over ``seeknal_project.yml``."""
        config = self.project.config
        limit = memory_limit or config.memory_limit
        try:
            limit_bytes = parse_size(limit) if limit else None
        except EngineError as e:
            if memory_limit:
                where = "--memory-limit"
            elif os.environ.get(ENV_MEMORY_LIMIT):
                where = ENV_MEMORY_LIMIT
            else:
                where = PROJECT_FILE
            raise ProjectError(f"{where}: {e}") from e
        return MemoryConfig(
            memory_limit=limit_bytes,
            threads=threads or config.threads,
            spill_dir=self.project.tmp,
        )
