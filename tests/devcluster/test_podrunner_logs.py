"""The node's log endpoint: names from the URL never become arbitrary paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from devcluster.podrunner.logs import find_log, tail


def make_log(root: Path, ns: str, pod_dir: str, container: str, text: str) -> Path:
    log = root / "pods" / ns / pod_dir / "logs" / f"{container}.log"
    log.parent.mkdir(parents=True)
    log.write_text(text)
    return log


def test_finds_the_named_pods_log_not_a_prefix_match(tmp_path: Path) -> None:
    mine = make_log(tmp_path, "ns", "web-1a2b3c4d", "main", "mine")
    make_log(tmp_path, "ns", "web-extra-5e6f7a8b", "main", "not mine")
    assert find_log(tmp_path, "ns", "web", "main") == mine


@pytest.mark.parametrize(
    ("ns", "pod", "container"),
    [("..", "web", "main"), ("ns", "../../etc", "main"), ("ns", "web", "../x"), ("ns", "*", "m")],
)
def test_names_that_are_not_dns_names_find_nothing(
    tmp_path: Path, ns: str, pod: str, container: str
) -> None:
    make_log(tmp_path, "ns", "web-1a2b3c4d", "main", "x")
    assert find_log(tmp_path, ns, pod, container) is None


def test_tail_keeps_the_last_lines() -> None:
    assert tail(b"a\nb\nc\n", 2) == b"b\nc\n"
    assert tail(b"a\nb\n", None) == b"a\nb\n"
    assert tail(b"a\nb\n", 0) == b""
