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
