"""`incluster --help` and `--version` say what the command is, in the user's words."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest
from incluster import cli

#: Words that belong to the code, not to the help of a command.
INTERNAL = ("_SUBCOMMANDS", "``", "register themselves", "see `incluster")


def _help(*argv: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "incluster.cli", *argv, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def test_version_prints_the_installed_version():
    out = subprocess.run(
        [sys.executable, "-m", "incluster.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"incluster {version('incluster')}"


def test_top_level_help_lists_every_subcommand_with_what_it_does():
    text = _help()
    for word in INTERNAL:
        assert word not in text
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("    ")}
    assert "summarise the metrics of a run" in lines["metrics"]
    assert "run every replica of an Experiment" in lines["run"]


@pytest.mark.parametrize("command", ["metrics", "run"])
def test_subcommand_help_has_no_internal_text(command):
    text = _help(command)
    for word in INTERNAL:
        assert word not in text


def test_an_unknown_plugin_gets_a_plain_line():
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli._listed("fancy")(sub)
    assert "a plugin command" in parser.format_help()
