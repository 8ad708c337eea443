"""Is Spark usable here: pyspark importable and a Java runtime found. Imports nothing heavy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from operators.errors import EngineError

INSTALL_HINT = "pip install 'seeknal-flow[spark]'"


def check_available() -> None:
    """Raise a one-line :class:`EngineError` unless pyspark and a Java runtime are present."""
    try:
        import pyspark  # noqa: F401
    except ImportError as e:
        raise EngineError(f"--engine spark needs pyspark, which is not installed: {INSTALL_HINT}") from e
    if java_executable() is None:
        raise EngineError(
            "--engine spark needs Java 17 or 21: no `java` on PATH and JAVA_HOME is not set "
            "(install a JDK, e.g. `apt-get install openjdk-17-jre-headless`)"
        )


def java_executable() -> str | None:
    """The ``java`` Spark will start: ``$JAVA_HOME/bin/java``, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and Path(home, "bin", "java").is_file():
        return str(Path(home, "bin", "java"))
    return shutil.which("java")
