"""Private file helpers: atomic writes and content hashes."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path, suffix=None):
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    An error (or an interruption) inside the block removes the temporary file, so ``path``
    is either absent, the old version, or the complete new version -- never half-written.

    Parameters
    ----------
    path : str or pathlib.Path
        Final destination. Its parent folder is created if missing.
    suffix : str, optional
        Suffix for the temporary file (defaults to ``path``'s own suffix, so libraries that
        choose a format by extension still work).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=(suffix if suffix is not None else path.suffix) + ".tmp"
    )
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def file_sha256(path, chunk_size=1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def array_sha256(array) -> str:
    """Hex SHA-256 of a numpy array's dtype, shape and bytes."""
    import numpy as np

    array = np.ascontiguousarray(array)
    h = hashlib.sha256()
    h.update(str(array.dtype).encode())
    h.update(str(array.shape).encode())
    h.update(array.tobytes())
    return h.hexdigest()


class FolderLockedError(RuntimeError):
    """Another process is writing the folder (see :func:`folder_lock`)."""


@contextlib.contextmanager
def folder_lock(folder, what="writing", wait=0.0):
    """Hold the lock of ``folder`` (one writer at a time) for the duration of the block.

    The lock is an advisory ``flock`` on ``<folder>/.lock``: the operating system releases it
    when its holder exits, however it exits, so a dead process never holds it (on NFS, Linux
    maps it to a POSIX lock that the server releases when the client dies). The file records
    the holder (pid, host, start time, what it does) for the error message.

    Parameters
    ----------
    folder : str or pathlib.Path
    what : str
        What the holder does (recorded for others' error messages).
    wait : float
        Seconds to wait for another holder to finish (polled every half second); 0 refuses at
        once.

    Raises
    ------
    FolderLockedError
        When another process (or another thread of this one) still holds the lock after
        ``wait`` seconds.
    """
    import fcntl
    import json
    import socket
    import time

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".lock"
    fh = open(path, "a+")
    try:
        deadline = time.monotonic() + max(0.0, float(wait))
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise FolderLockedError(
                f"{str(folder)!r} is being written by another process ({holder}); wait for it to finish, or "
                "use another results folder") from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.strftime("%Y-%m-%dT%H:%M:%S"), "what": what}))
        fh.flush()
        try:
            yield path
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()
