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
from incluster.tracking import paths, store
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
        """The client of the operator's report API for this pod (seed 000's ``client``).

        It reads this Experiment and the ones it references and reports the tracking
        summary; the pod holds no Kubernetes API right (``incluster.client.Client``).
        Built on first use; outside a cluster it raises ``ContextError``.
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
    def log_metrics(
        self, step: int | None = None, timestamp: object = None, **metrics: Any
    ) -> None:
        self.run.log_metrics(step, timestamp, **metrics)

    def log_params(self, reset: bool = False, **params: Any) -> None:
        """Inputs (``log_inputs``); ``reset=True`` replaces the ones logged before."""
        self.run.log_inputs(reset, **params)

    def log_tags(self, tags: str | Iterable[str], reset: bool = False) -> None:
        self.run.log_tags(tags, reset)

    def log_data_ref(self, data: object, data_name: str = "data", reset: bool = False) -> str:
        """Record a content hash of ``data`` (bytes, str, path, file, buffer, pandas)."""
        return self.run.log_data_ref(data, data_name, reset)

    def log_output(self, file_path: str | os.PathLike[str]) -> dict[str, Any]:
        """Copy a file into the outputs path (atomically), record it as an artifact, and
        with an object store upload it at once; the record's ``url`` is its object URL.

        A store that does not take the file now never raises here: the upload is retried
        in the background and at ``end()`` (one warning says why).
        """
        run = self.run
        if run.uploader is not None:
            source = os.fspath(file_path)
            if not os.path.isfile(source):
                raise ValueError(f"file_path={source!r} is not a file")
            name = _label(run.outputs_path, source) if _inside(run.outputs_path, source) else None
            name = name or paths.check_artifact_name(os.path.basename(source))
            ((url, digest),) = _upload(run, [(source, name)])
            return run.log_uploaded(name, url, digest, os.path.splitext(name)[0])
        stored = store.store_file(run.outputs_path, file_path)
        return run.log_artifact_ref(stored, ArtifactKind.FILE)

    def log_outputs(self, dir_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
        """Copy a directory's files into the outputs path, each atomically, record them,
        and with an object store upload them at once (see ``log_output``)."""
        run = self.run
        if run.uploader is not None:
            files = store.tree_files(dir_path)
            if _inside(run.outputs_path, os.fspath(dir_path)):  # keep their place
                files = [(full, _label(run.outputs_path, full)) for full, _ in files]
            return [
                run.log_uploaded(name, url, digest)
                for (_, name), (url, digest) in zip(files, _upload(run, files), strict=True)
            ]
        return [
            run.log_artifact_ref(stored, ArtifactKind.FILE, _label(run.outputs_path, stored))
            for stored in store.store_tree(run.outputs_path, dir_path)
        ]


def _upload(run: Run, files: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Upload ``(source, name)`` pairs and hash them meanwhile: ``(url, digest)`` each.

    The hashing runs on a second thread while the upload waits on the network (hashlib
    releases the GIL on large buffers), so recording the files costs no extra time.
    """
    import threading

    from incluster.tracking import hashing

    digests: list[str] = []
    failure: list[BaseException] = []

    def hash_all() -> None:
        try:
            digests.extend(hashing.file_hash(source) for source, _ in files)
        except BaseException as exc:  # re-raised in the caller's thread below
            failure.append(exc)

    hasher = threading.Thread(target=hash_all, name="incluster-hash", daemon=True)
    hasher.start()
    assert run.uploader is not None
    try:
        urls = run.uploader.upload_as(files)
    finally:
        hasher.join()
    if failure:
        raise failure[0]
    return list(zip(urls, digests, strict=True))


def _inside(root: str, path: str) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


def _label(root: str, stored: str) -> str:
    """Artifact name of a copied file: its path below the outputs root, '/'-separated."""
    return os.path.relpath(os.path.realpath(stored), os.path.realpath(root)).replace(os.sep, "/")
