"""Shared pytest setup: the `cluster` fixture (devcluster emulator or a real cluster)."""

pytest_plugins = ["devcluster.pytest_plugin"]
