"""Database connections of sources: ``${VAR}`` expansion, a password-free identity, redaction.

A source's ``connection`` is kept as written (``${SHOP_PG_URL}``) in specs and
everything derived from them; the expanded string exists only in memory while
the source is fingerprinted or read. What may be recorded about it is its
:func:`identity` (driver, host, port, database, user, table or query): enough
to notice that a source now points elsewhere, never its password.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from seeknal_flow.authoring.specs import SourceFormat
from seeknal_flow.errors import PlanError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
REDACTED = "***"


def expand(spec, environ: dict[str, str] | None = None) -> str:
    """The source's connection with every ``${VAR}`` replaced from the environment.

    A sqlite path is resolved against the project (the caller passes the root
    through :func:`resolve_sqlite`); a missing variable is a one-line error
    naming it and the node.

    >>> from seeknal_flow.authoring.specs import Location, SourceSpec
    >>> spec = SourceSpec(name="orders", location=Location("s.yml", 1), format=SourceFormat.POSTGRES,
    ...                   connection="${PG}", table="orders")
    >>> expand(spec, {"PG": "postgresql://h/db"})
    'postgresql://h/db'
    """
    env = os.environ if environ is None else environ

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in env:
            raise PlanError(
                f"{spec.id} ({spec.location}): connection: environment variable {name} is not set; "
                f"export {name}=... before running (e.g. postgresql://user:password@host:5432/db)"
            )
        return env[name]

    return _VAR.sub(value, spec.connection)


def resolve_sqlite(connection: str, root: Path) -> str:
    """A sqlite connection (a file path, or ``sqlite:///path``) as an absolute path under ``root``.

    >>> resolve_sqlite("data/shop.db", Path("/p"))
    '/p/data/shop.db'
    """
    path = connection.removeprefix("sqlite://").removeprefix("file:")
    return str(root / path) if not Path(path).is_absolute() else path


def identity(spec, connection: str) -> dict[str, str]:
    """What the source reads, without secrets: driver, host, port, database, user, table/query.

    >>> from seeknal_flow.authoring.specs import Location, SourceSpec
    >>> spec = SourceSpec(name="o", location=Location("s.yml", 1), format=SourceFormat.POSTGRES,
    ...                   connection="x", table="public.orders")
    >>> identity(spec, "postgresql://u:secret@db.example:5432/shop")["host"]
    'db.example'
    """
    out = {"driver": spec.format.value, "table": spec.table, "query": (spec.query or "").strip()}
    if spec.format == SourceFormat.SQLITE:
        out["database"] = connection
        return out
    parts = urlsplit(connection)
    try:
        port = str(parts.port or "")
    except ValueError:
        port = "?"
    out.update(host=parts.hostname or "", port=port, database=parts.path.lstrip("/"),
               user=unquote(parts.username or ""))
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    for key in ("host", "port", "dbname", "user"):  # libpq parameters given as URI options
        if key in query:
            out[key if key != "dbname" else "database"] = query[key]
    return out


def secrets_of(connection: str) -> list[str]:
    """The strings that must never be shown: the whole connection and its password.

    >>> secrets_of("postgresql://u:p%40ss@h/db")
    ['postgresql://u:p%40ss@h/db', 'p%40ss', 'p@ss']
    """
    found = [connection]
    try:
        parts = urlsplit(connection)
        password = parts.password
    except ValueError:
        password = None
    if password:
        found += [password, unquote(password)]
    for key, value in (p.split("=", 1) for p in connection.split("?", 1)[-1].split("&") if "=" in p):
        if key == "password" and value:
            found += [value, unquote(value)]
    return [s for i, s in enumerate(found) if s and s not in found[:i]]


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***`` (longest first, so a URI goes whole).

    >>> redact("cannot reach postgresql://u:pw@h/db (pw)", ["postgresql://u:pw@h/db", "pw"])
    'cannot reach *** (***)'
    """
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 2:
            text = text.replace(secret, REDACTED)
    return text
