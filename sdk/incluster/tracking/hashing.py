"""Stable content hashes for data references and artifact files.

A data reference answers "was this run trained on the same data as that one?", so the
hash must depend on the content only: the same bytes give the same hash in any process
on any machine (no ``hash()``, no ``id()``, no pickling). Buffers also hash their
element format and shape, so a float32 (2, 3) array and an int8 (24,) array with the
same bytes differ. numpy and pandas are never imported here: a numpy array is just an
object with the buffer protocol, and pandas is imported only when given a pandas object
(its module is then already loaded).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
from typing import Any

ALGORITHM = "sha256"
_CHUNK = 1 << 20


def _new() -> Any:
    return hashlib.sha256()


def _digest(h: Any) -> str:
    return f"{ALGORITHM}:{h.hexdigest()}"


def file_hash(path: str | os.PathLike[str]) -> str:
    """Hash of a regular file's bytes, read in chunks (models can be large).

    Anything else (a FIFO, a socket, ``/dev/zero``) raises ``ValueError``: reading it
    would block training or never end. Opened non-blocking and checked on the open file,
    so a path swapped after the check cannot slip through.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(
                f"{os.fspath(path)!r} is not a regular file (a FIFO, socket or device); "
                "only files and directories of files can be hashed"
            )
        os.set_blocking(fd, True)
        h = _new()
        with os.fdopen(fd, "rb", closefd=False) as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
    finally:
        os.close(fd)
    return _digest(h)


def tree_hash(path: str | os.PathLike[str]) -> str:
    """Hash of a directory: every file's relative path and bytes, in sorted order."""
    root = os.fspath(path)
    h = _new()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for filename in sorted(filenames):
            full = os.path.join(dirpath, filename)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            h.update(rel.encode() + b"\x00")
            h.update(file_hash(full).encode() + b"\x00")
    return _digest(h)


def _stream_hash(f: Any) -> str:
    """Hash a file object from its current position; restore the position if it can."""
    start = f.tell() if f.seekable() else None
    h = _new()
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            break
        h.update(chunk.encode() if isinstance(chunk, str) else chunk)
    if start is not None:
        f.seek(start)
    return _digest(h)


def _buffer_hash(view: memoryview) -> str:
    h = _new()
    h.update(f"buffer\x00{view.format}\x00{view.shape}\x00".encode())
    h.update(view if view.c_contiguous else view.tobytes())
    return _digest(h)


def _pandas_hash(data: Any) -> str:
    pandas_util = sys.modules["pandas"].util
    h = _new()
    h.update(f"pandas\x00{type(data).__name__}\x00{list(getattr(data, 'columns', []))}".encode())
    hashes = pandas_util.hash_pandas_object(data, index=True).to_numpy()
    h.update(memoryview(hashes).cast("B"))
    return _digest(h)


def data_hash(data: object) -> str:
    """Content hash of ``data``: bytes, str, a path, a binary/text file, a buffer, pandas.

    Bytes, a file's content and a stream all hash as plain ``sha256`` of their bytes, so
    ``sha256sum`` on the data file gives the same digest. A ``str`` is hashed as its
    UTF-8 text (not as a path: give a ``pathlib.Path`` for that). Buffers (numpy
    arrays, ``array.array``) also hash their element format and shape.
    """
    if isinstance(data, bytes | bytearray):
        return _digest(hashlib.sha256(data))
    if isinstance(data, str):
        return _digest(hashlib.sha256(data.encode("utf-8", "surrogatepass")))
    if isinstance(data, os.PathLike):
        if os.path.isdir(data):
            return tree_hash(data)
        if not os.path.isfile(data):
            raise ValueError(f"data={os.fspath(data)!r} is neither a file nor a directory")
        return file_hash(data)
    if isinstance(data, io.IOBase) or (hasattr(data, "read") and hasattr(data, "seekable")):
        return _stream_hash(data)
    module = type(data).__module__.partition(".")[0]
    if module == "pandas" and "pandas" in sys.modules:
        return _pandas_hash(data)
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"data of type {type(data).__name__} cannot be hashed: pass bytes, str, a "
            "pathlib.Path, a file object, an object with the buffer protocol (numpy "
            "arrays) or a pandas object"
        ) from None
    with view:
        return _buffer_hash(view)
