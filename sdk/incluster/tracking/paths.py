"""Where a run writes, and the guard that keeps untrusted names inside the outputs dir.

Names handed to the tracking API (output file names, artifact names) come from user
code and sometimes from user data; they must never become a path outside the run's
outputs directory, even through a symlink planted inside it.
"""

from __future__ import annotations

import os

from incluster.contract import EVENTS_ATTEMPT_INFIX, EVENTS_SUFFIX

_TASK_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def _is_task_type(text: str) -> bool:
    """A DNS-label-like word: 1-63 of [a-z0-9-_], starting and ending alphanumeric."""
    return (
        0 < len(text) <= 63
        and _TASK_TYPE_CHARS.issuperset(text)
        and text[0] not in "-_"
        and text[-1] not in "-_"
    )


def events_file_name(task_type: str, task_index: int, attempt: int = 1) -> str:
    """``<type>-<index>.jsonl``: one file per replica, so replicas never share a file.

    A whole-experiment restart's later attempts write ``<type>-<index>.attempt-<n>.jsonl``,
    so each attempt's records stay apart (and attempt 1 keeps the name it always had).

    The task type comes from the environment; it is checked against a DNS-label-like
    pattern so that it can never smuggle a path separator into the file name.
    """
    if not isinstance(task_type, str) or not _is_task_type(task_type):
        raise ValueError(
            f"task type {task_type!r} cannot name an event file: use lower-case letters, "
            "digits, '-' or '_' (for example 'worker')"
        )
    if type(task_index) is not int or task_index < 0:
        raise ValueError(f"task index {task_index!r} must be a non-negative int")
    if type(attempt) is not int or attempt < 1:
        raise ValueError(f"attempt {attempt!r} must be an int >= 1")
    infix = f"{EVENTS_ATTEMPT_INFIX}{attempt}" if attempt > 1 else ""
    return f"{task_type}-{task_index}{infix}{EVENTS_SUFFIX}"


def inside(root: str, name: str | os.PathLike[str], *, argument: str) -> str:
    """The absolute path of ``name`` under ``root``; ValueError if it would leave it.

    Rejects absolute names, ``..`` components, and names whose real path (after
    following symlinks that already exist) is outside ``root``.
    """
    if not isinstance(name, str | os.PathLike):
        raise TypeError(f"{argument} must be a str or path, got {type(name).__name__}")
    text = os.fspath(name)
    if not isinstance(text, str) or not text or "\x00" in text:
        raise ValueError(f"{argument} must be a non-empty relative path, got {text!r}")
    parts = text.replace("\\", "/").split("/")
    if os.path.isabs(text) or text.startswith(("/", "\\")) or ".." in parts:
        raise ValueError(
            f"{argument}={text!r} would leave the outputs directory; "
            "give a relative name without '..' (for example 'model/weights.bin')"
        )
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, text))
    if target != real_root and not target.startswith(real_root + os.sep):
        raise ValueError(
            f"{argument}={text!r} resolves to {target}, outside the outputs directory "
            f"{real_root} (a symlink points out of it)"
        )
    return os.path.join(os.path.abspath(root), os.path.normpath(text))


def check_artifact_name(name: object) -> str:
    """An artifact name is a relative, normalised, '/'-separated label.

    Names may nest (``checkpoints/epoch-3``) because a store may one day keep artifacts
    under their names, so anything that could leave a directory is refused: absolute
    names, ``.``/``..`` or empty components, backslashes and NUL.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    parts = name.split("/")
    if not name or "\\" in name or "\x00" in name or any(part in {"", ".", ".."} for part in parts):
        raise ValueError(
            f"name={name!r} is not a valid artifact name: use a relative name such as "
            "'model' or 'checkpoints/epoch-3' (no leading '/', no '.' or '..' parts, no '\\')"
        )
    return name
