"""api.times: the one Kubernetes time format every status, Event and token annotation uses."""

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as hs
from incluster_operator.api.times import format_time, parse_time


@given(
    hs.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9998, 12, 31),
        timezones=hs.just(UTC),
    )
)
def test_a_written_time_reads_back_to_the_second(moment: datetime) -> None:
    assert parse_time(format_time(moment)) == moment.replace(microsecond=0)


def test_times_are_written_in_utc_with_a_z() -> None:
    plus_two = datetime(2026, 1, 1, 14, 30, 5, 999, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(plus_two) == "2026-01-01T12:30:05Z"


def test_absent_or_garbage_times_read_as_none_and_naive_ones_as_utc() -> None:
    assert parse_time(None) is None
    assert parse_time("") is None
    assert parse_time("yesterday") is None
    assert parse_time("2026-01-01T12:00:00") == datetime(2026, 1, 1, 12, tzinfo=UTC)
