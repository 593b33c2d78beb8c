"""Copying files into the outputs store so that readers never see half a file.

Each file is copied to a hidden temporary name in its destination directory and then
renamed over the final name: ``rename`` within one file system is atomic, so a reader
(or a restarted replica) sees either the old file or the whole new one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

from incluster.tracking import paths


def copy_file_atomic(source: str, destination: str) -> None:
    """Copy ``source`` to ``destination`` via a temp file in the same directory."""
    directory = os.path.dirname(destination)
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".incluster-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        shutil.copymode(source, temp)
        os.replace(temp, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def store_file(outputs_root: str, file_path: str | os.PathLike[str]) -> str:
    """Copy one file into the outputs root under its base name; returns the stored path.

    A file already inside the outputs root is left where it is.
    """
    source = os.fspath(file_path)
    if not os.path.isfile(source):
        raise ValueError(f"file_path={source!r} is not a file")
    real_root = os.path.realpath(outputs_root)
    if os.path.realpath(source).startswith(real_root + os.sep):
        return os.path.realpath(source)
    destination = paths.inside(outputs_root, os.path.basename(source), argument="file_path")
    copy_file_atomic(source, destination)
    return destination


def store_tree(outputs_root: str, dir_path: str | os.PathLike[str]) -> list[str]:
    """Copy a directory's files into the outputs root, keeping their relative paths.

    A directory already under the outputs root is recorded where it is, not copied.

    Symlinks are not followed out of the source tree (they are skipped), so a crafted
    directory cannot make the copy read or write elsewhere.
    """
    source = os.fspath(dir_path)
    real_root = os.path.realpath(outputs_root)
    real_source = os.path.realpath(source)
    if real_source == real_root:
        raise ValueError(f"dir_path={source!r} is the outputs directory itself")
    already_stored = real_source.startswith(real_root + os.sep)
    stored = []
    for full, rel in tree_files(source):
        if already_stored:  # written under the outputs path already: nothing to copy
            stored.append(os.path.realpath(full))
            continue
        destination = paths.inside(outputs_root, rel, argument="dir_path entry")
        copy_file_atomic(full, destination)
        stored.append(destination)
    return stored


def tree_files(dir_path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``(path, '/'-separated relative path)`` of a directory's files, symlinks skipped."""
    source = os.fspath(dir_path)
    if not os.path.isdir(source):
        raise ValueError(f"dir_path={source!r} is not a directory")
    found = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for filename in sorted(filenames):
            full = os.path.join(dirpath, filename)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            found.append((full, os.path.relpath(full, source).replace(os.sep, "/")))
    return found
