"""Times as Kubernetes writes them: RFC 3339 in UTC, to the second, with a ``Z``.

Why one place: status fields, Events, token annotations and the local runner's pod
statuses all carry such times, and ``kubectl`` and our own parsers read them back; one
format and one parser keep them comparable.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: ``strftime`` pattern of a Kubernetes time (``metav1.Time``).
FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, as Kubernetes writes times."""
    return moment.astimezone(UTC).strftime(FORMAT)


def parse_time(value: str | None) -> datetime | None:
    """Inverse of ``format_time``; None for absent or unparseable values."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
