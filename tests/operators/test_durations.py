import datetime as dt

import pytest

from operators.durations import parse_duration
from operators.errors import EngineError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", dt.timedelta(days=30)),
        ("12h", dt.timedelta(hours=12)),
        ("15m", dt.timedelta(minutes=15)),
        ("45s", dt.timedelta(seconds=45)),
        ("2w", dt.timedelta(weeks=2)),
        ("500ms", dt.timedelta(milliseconds=500)),
        (" 7 D ", dt.timedelta(days=7)),
        ("1.5h", dt.timedelta(minutes=90)),
        (dt.timedelta(hours=3), dt.timedelta(hours=3)),
    ],
)
def test_parses(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["3 parsecs", "", "d", "30", "-1d", "1d2h", None, 5])
def test_rejects(text):
    with pytest.raises(EngineError, match=r"is not a duration: write e\.g\. '30d'"):
        parse_duration(text)


def test_message_names_the_setting():
    with pytest.raises(EngineError, match=r"^max_age '3 parsecs' is not a duration"):
        parse_duration("3 parsecs")
