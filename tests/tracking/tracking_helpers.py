"""Small helpers shared by the tracking tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def lines(path: str | Path) -> list[bytes]:
    """The raw lines of an event file, asserting that each is whole and valid JSON."""
    data = Path(path).read_bytes()
    assert data == b"" or data.endswith(b"\n"), "the file ends inside a line"
    result = data.splitlines()
    for line in result:
        json.loads(line)
    return result


def run_python(code: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a snippet in a fresh interpreter with the SDK importable."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "sdk"), **kwargs.pop("env", {})}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kwargs,
    )
