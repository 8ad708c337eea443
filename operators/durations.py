"""Durations written the way users write them in specs: ``"30d"``, ``"12h"``, ``"500ms"``."""

from __future__ import annotations

import datetime
import re

from operators.errors import EngineError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)\s*$", re.IGNORECASE)
_UNITS = {
    "w": datetime.timedelta(weeks=1),
    "d": datetime.timedelta(days=1),
    "h": datetime.timedelta(hours=1),
    "m": datetime.timedelta(minutes=1),
    "s": datetime.timedelta(seconds=1),
    "ms": datetime.timedelta(milliseconds=1),
}


def parse_duration(text: str | datetime.timedelta, what: str = "max_age") -> datetime.timedelta:
    """Parse ``"30d"``, ``"12h"``, ``"15m"``, ``"45s"``, ``"2w"`` or ``"500ms"``.

    A ``timedelta`` passes through unchanged. ``what`` names the setting in the
    error message.

    Args:
        text: The duration text (whitespace tolerant) or a ``timedelta``.
        what: The name of the setting, used in the error message.

    Returns:
        The duration as a ``timedelta``.

    Raises:
        EngineError: ``text`` is not a duration.

    >>> parse_duration("30d")
    datetime.timedelta(days=30)
    >>> parse_duration(" 500 ms ")
    datetime.timedelta(microseconds=500000)
    >>> parse_duration("3 parsecs")
    Traceback (most recent call last):
    ...
    operators.errors.EngineError: max_age '3 parsecs' is not a duration: write e.g. '30d', '12h', '15m', '45s'
    """
    if isinstance(text, datetime.timedelta):
        return text
    m = _DURATION.match(text) if isinstance(text, str) else None
    if not m:
        raise EngineError(
            f"{what} {text!r} is not a duration: write e.g. '30d', '12h', '15m', '45s'"
        )
    number = m.group(1)
    # Whole numbers stay exact: float("1e6-ish") * timedelta could round microseconds.
    amount = float(number) if "." in number else int(number)
    return amount * _UNITS[m.group(2).lower()]
