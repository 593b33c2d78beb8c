"""Seed 000's ``Experiment``: the run context getters and the v0 logging calls.

The getters delegate to ``incluster.context`` (env first, then the mounted files); the
logging calls go to the process's default tracking run, so v0 and v1 code in the same
process write one event file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from incluster import context
from incluster.schemas import ArtifactKind
from incluster.tracking import store
from incluster.tracking.run import Run

if TYPE_CHECKING:  # pragma: no cover
    from incluster.client import Client


class Experiment:
    """The in-pod handle of the running experiment (seed 000's API)."""

    def __init__(self, run: Run | None = None) -> None:
        self._run = run
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        """The scoped Kubernetes API client of this experiment (seed 000's ``client``).

        It may read and patch this Experiment and read the ones it references, nothing
        else; see ``incluster.client.Client``. Built on first use, without I/O.
        """
        if self._client is None:
            from incluster.client import Client

            self._client = Client()
        return self._client

    @property
    def run(self) -> Run:
        """The tracking run this experiment logs to (the default run unless given)."""
        if self._run is None or self._run.ended:
            from incluster import tracking

            self._run = tracking.current_run()
        return self._run

    # --- context getters ---------------------------------------------------------------
    @staticmethod
    def get_cluster_def() -> dict[str, list[str]]:
        return context.get_cluster_def()

    @staticmethod
    def get_tf_config(envvar: str | None = None) -> dict[str, Any]:
        return context.get_tf_config(envvar)

    @staticmethod
    def get_task_info() -> dict[str, Any]:
        return context.get_task_info()

    @staticmethod
    def get_experiment_info() -> dict[str, Any]:
        return context.get_experiment_info()

    @staticmethod
    def get_attempt() -> int:
        return context.get_attempt()

    @staticmethod
    def get_declarations() -> dict[str, Any]:
        return context.get_declarations()

    @staticmethod
    def get_log_level() -> str | None:
        return context.get_log_level()

    @staticmethod
    def get_outputs_path() -> str:
        return context.get_outputs_path()

    @staticmethod
    def get_outputs_refs_paths() -> dict[str, list[str]]:
        return context.get_outputs_refs_paths()

    @staticmethod
    def get_data_paths() -> dict[str, str]:
        return context.get_data_paths()

    @staticmethod
    def is_in_cluster() -> bool:
        return context.is_in_cluster()

    @staticmethod
    def is_distributed() -> bool:
        return context.is_distributed()

    # --- logging -----------------------------------------------------------------------
    def log_metrics(self, step: int | None = None, **metrics: Any) -> None:
        self.run.log_metrics(step, None, **metrics)

    def log_params(self, **params: Any) -> None:
        self.run.log_inputs(**params)

    def log_tags(self, tags: str | Iterable[str]) -> None:
        self.run.log_tags(tags)

    def log_data_ref(self, data: object, data_name: str) -> str:
        """Record a content hash of ``data`` (bytes, str, path, file, buffer, pandas)."""
        return self.run.log_data_ref(data, data_name)

    def log_output(self, file_path: str | os.PathLike[str]) -> dict[str, Any]:
        """Copy a file into the outputs store (atomically) and record it as an artifact."""
        run = self.run
        stored = store.store_file(run.outputs_path, file_path)
        return run.log_artifact_ref(stored, ArtifactKind.FILE)

    def log_outputs(self, dir_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
        """Copy a directory's files into the outputs store, each atomically, and record them."""
        run = self.run
        return [
            run.log_artifact_ref(stored, ArtifactKind.FILE, _label(run.outputs_path, stored))
            for stored in store.store_tree(run.outputs_path, dir_path)
        ]


def _label(root: str, stored: str) -> str:
    """Artifact name of a copied file: its path below the outputs root, '/'-separated."""
    return os.path.relpath(os.path.realpath(stored), os.path.realpath(root)).replace(os.sep, "/")
