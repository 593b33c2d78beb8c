"""``import incluster`` stays light: no operator-side library is pulled in (DESIGN.md 1)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

HEAVY = ("pydantic", "yaml", "kubernetes", "kopf")

PROBE = """
import json, sys
{statement}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def heavy_modules_after(statement: str) -> list[str]:
    """Heavy modules in sys.modules after running ``statement`` in a fresh interpreter."""
    code = PROBE.format(statement=statement, heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: list[str] = json.loads(out.stdout)
    return loaded


@pytest.mark.parametrize(
    "statement",
    [
        "import incluster",
        "import incluster; incluster.ContextError",
        "from incluster import context, topology, peers; context.get_cluster_def()",
    ],
)
def test_sdk_import_pulls_no_heavy_module(statement: str) -> None:
    assert heavy_modules_after(statement) == []


def test_tracking_import_pulls_no_heavy_module() -> None:
    if importlib.util.find_spec("incluster.tracking") is None:
        pytest.skip("incluster.tracking is not merged yet")
    assert heavy_modules_after("from incluster import tracking") == []


def test_the_probe_can_see_a_heavy_module() -> None:
    """Guards the test itself: a heavy import must show up."""
    assert heavy_modules_after("import yaml") == ["yaml"]
