"""``--begin-time`` values (flux_launch.core.when) against a fixed now."""

from datetime import datetime

import pytest

from flux_launch.core.when import parse

NOW = datetime(2026, 12, 6, 10, 30, 0).timestamp()


def _at(*args):
    return datetime(*args).timestamp()


@pytest.mark.parametrize("text, want", [
    ("now", NOW),
    ("+90s", NOW + 90),
    ("+1.5h", NOW + 5400),
    ("in an hour", NOW + 3600),
    ("in 5 minutes", NOW + 300),
    ("in 2 days", NOW + 2 * 86400),
    ("@12345.5", 12345.5),
    ("11am", _at(2026, 12, 6, 11, 0)),
    ("8am", _at(2026, 12, 7, 8, 0)),  # passed today: tomorrow's
    ("8:30PM", _at(2026, 12, 6, 20, 30)),
    ("17:45:10", _at(2026, 12, 6, 17, 45, 10)),
    ("noon", _at(2026, 12, 6, 12, 0)),
    ("midnight", _at(2026, 12, 7, 0, 0)),
    ("tomorrow", _at(2026, 12, 7, 0, 0)),
    ("tomorrow 8am", _at(2026, 12, 7, 8, 0)),
    ("today 9pm", _at(2026, 12, 6, 21, 0)),
    ("2026-12-24 08:00", _at(2026, 12, 24, 8, 0)),
    ("2026-12-24T08:00:00", _at(2026, 12, 24, 8, 0)),
    ("2026-12-24", _at(2026, 12, 24)),
])
def test_parse(text, want):
    assert parse(text, now=NOW) == pytest.approx(want)


@pytest.mark.parametrize("text", ["whenever", "+1x", "25:00", "13pm", "8", "in 3 fortnights", "tomorrow soon", ""])
def test_bad(text):
    with pytest.raises(ValueError, match="invalid date or time|invalid"):
        parse(text, now=NOW)
