"""The images' Dockerfiles, checked with Docker's own parser (no daemon exists here).

What is checked is what the chart relies on: a non-root numeric user (runAsNonRoot needs a
numeric UID to verify), nothing written outside /tmp at run time (readOnlyRootFilesystem),
a default command equal to the chart's, and a build context that holds exactly what the
build copies. The build itself runs only where a Docker daemon exists.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

import dockerfile
import pytest
import setuptools

from tests.chart.manifests import ROOT, Render, operator_container

OPERATOR = ROOT / "Dockerfile"
SDK = ROOT / "Dockerfile.sdk"


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    commands: tuple[dockerfile.Command, ...]

    def values(self, cmd: str) -> list[tuple[str, ...]]:
        return [c.value for c in self.commands if c.cmd == cmd]

    def env(self) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for value in self.values("ENV"):
            pairs.update(zip(value[::2], value[1::2], strict=True))
        return pairs


def stages(path: Path) -> list[Stage]:
    result: list[Stage] = []
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "FROM":
            value = command.value
            name = value[2] if len(value) == 3 and value[1].upper() == "AS" else None
            result.append(Stage(value[0], name, ()))
        else:
            assert result, f"{path.name}: instruction before FROM"
            last = result[-1]
            result[-1] = Stage(last.base, last.name, (*last.commands, command))
    return result


def context_sources(path: Path) -> set[str]:
    """Paths the build copies from the context (COPY without --from)."""
    sources: set[str] = set()
    for stage in stages(path):
        for command in stage.commands:
            if command.cmd == "COPY" and not any(f.startswith("--from=") for f in command.flags):
                sources.update(s.rstrip("/") for s in command.value[:-1])
    return sources


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _glob(pattern.lstrip("!").rstrip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            verdict = not negate
    return verdict


def _glob(pattern: str) -> re.Pattern[str]:
    out = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        out += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
    return re.compile(out)


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("path", [OPERATOR, SDK], ids=lambda p: p.name)
def test_multi_stage_pinned_and_non_root(path: Path) -> None:
    parsed = stages(path)
    assert len(parsed) >= 2, "build tools must stay in a build stage"
    for stage in parsed:
        repo, _, tag = stage.base.partition("@")[0].partition(":")
        pinned_by_tag = re.fullmatch(r"\d+\.\d+\.\d+-slim-[a-z]+", tag) is not None
        assert pinned_by_tag or "@sha256:" in stage.base, f"unpinned base {stage.base}"
        assert repo == "python"
    final = parsed[-1]
    assert final.base == parsed[0].base, "the venv's interpreter path must exist in the final image"
    users = final.values("USER")
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1][0].partition(":")
    assert re.fullmatch(r"[1-9]\d*", uid), "runAsNonRoot can only verify a numeric, non-0 UID"
    assert re.fullmatch(r"[1-9]\d*", gid)
    assert any(c.cmd == "COPY" and f"--from={parsed[0].name}" in c.flags for c in final.commands), (
        "the final stage copies the built venv from the build stage"
    )


@pytest.mark.parametrize("path", [OPERATOR, SDK], ids=lambda p: p.name)
def test_nothing_is_fetched_by_add_and_nothing_written_outside_tmp(path: Path) -> None:
    commands = [c for s in stages(path) for c in s.commands]
    assert [c for c in commands if c.cmd == "ADD"] == [], "use COPY; ADD fetches URLs"
    final = stages(path)[-1]
    env = final.env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == "/tmp"
    assert final.values("WORKDIR")[-1] == ("/tmp",)
    # Byte-compiled at build time, so a read-only root costs no start-up time.
    assert any("compileall" in v[0] for v in stages(path)[0].values("RUN"))


def test_operator_image_installs_the_operator_extra_and_runs_the_charts_command(
    render: Render,
) -> None:
    build, final = stages(OPERATOR)[0], stages(OPERATOR)[-1]
    assert any('install ".[operator]"' in v[0] for v in build.values("RUN"))
    assert [c for c in final.commands if c.cmd == "COPY" and not c.flags] == []
    cmd = next(c for c in final.commands if c.cmd == "CMD")
    assert cmd.json, "exec form: kopf gets the signals, not a shell"
    assert list(cmd.value) == operator_container(render())["command"]
    ports = tuple(str(p["containerPort"]) for p in operator_container(render())["ports"])
    assert final.values("EXPOSE") == [ports]


def test_sdk_image_carries_the_sdk_only() -> None:
    build = stages(SDK)[0]
    assert "operator" not in context_sources(SDK)
    installs = [v[0] for v in build.values("RUN") if "pip install" in v[0]]
    assert installs
    assert all("[" not in line for line in installs), "no extras in the training image"


@pytest.mark.parametrize("path", [OPERATOR, SDK], ids=lambda p: p.name)
def test_build_context_holds_what_the_build_copies(path: Path) -> None:
    patterns = dockerignore()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    sources = context_sources(path)
    assert project["project"]["readme"] in sources, "setuptools reads the readme"
    assert "pyproject.toml" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such path"
        assert not ignored(source, patterns), f"COPY {source} is excluded by .dockerignore"
        for file in (ROOT / source).rglob("*.py") if (ROOT / source).is_dir() else ():
            relative = file.relative_to(ROOT).as_posix()
            assert not ignored(relative, patterns), f"{relative} excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = dockerignore()
    for path in (".git/config", ".venv/bin/python", "tests/test_generated.py", "outputs/x"):
        assert ignored(path, patterns), path
    assert ignored("sdk/incluster/__pycache__/context.cpython-311.pyc", patterns)
    assert not ignored("sdk/incluster/context.py", patterns)


@pytest.mark.parametrize(
    ("path", "expected"),
    [(OPERATOR, {"incluster", "incluster_operator"}), (SDK, {"incluster"})],
    ids=["Dockerfile", "Dockerfile.sdk"],
)
def test_setuptools_finds_the_right_packages_in_the_copied_context(
    tmp_path: Path, path: Path, expected: set[str]
) -> None:
    """What `pip install` in the build stage will package, from exactly the copied paths."""
    for source in context_sources(path):
        target = tmp_path / source
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / source, target)
    find = tomllib.loads((tmp_path / "pyproject.toml").read_text())["tool"]["setuptools"]
    find = find["packages"]["find"]
    found = {
        package.split(".")[0]
        for where in find["where"]
        for package in setuptools.find_packages(tmp_path / where, include=find["include"])
    }
    assert found == expected
