"""When the operator replaces the token: a pure function of its lifetime and now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from incluster_operator import tokens

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def state(lifetime: timedelta) -> tokens.TokenState:
    return tokens.TokenState(issued_at=T0, expires_at=T0 + lifetime)


def test_no_token_is_due_at_once():
    assert tokens.refresh_at(None) is None
    assert tokens.refresh_due(None, T0)


def test_an_hour_token_is_refreshed_halfway():
    hour = state(timedelta(hours=1))
    assert tokens.refresh_at(hour) == T0 + timedelta(minutes=30)
    assert not tokens.refresh_due(hour, T0 + timedelta(minutes=29, seconds=59))
    assert tokens.refresh_due(hour, T0 + timedelta(minutes=30))


def test_a_short_token_keeps_room_for_the_kubelet():
    short = state(timedelta(minutes=8))
    # halfway (4 min) would leave 4 minutes; the floor asks for 5 before expiry.
    assert tokens.refresh_at(short) == T0 + timedelta(minutes=3)


def test_an_expired_token_is_due():
    assert tokens.refresh_due(state(timedelta(minutes=10)), T0 + timedelta(hours=2))
