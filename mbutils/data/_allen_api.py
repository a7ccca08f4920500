"""Private helpers of the Allen builder: errors, a cache-first API object, error translation.

Nothing here imports allensdk at module level.
"""
from __future__ import annotations

import contextlib
import socket
import zipfile
from pathlib import Path

__all__ = [
    "AllenDataError",
    "AllenOfflineError",
    "AllenCorruptFileError",
    "AllenNetworkError",
    "make_api",
    "network_errors",
    "reading",
    "download_file",
    "ensure_json",
]

API_HOST = "http://api.brain-map.org"


class AllenDataError(RuntimeError):
    """Building the Allen dataset failed for a reason the message explains."""


class AllenOfflineError(AllenDataError):
    """Offline, and the cache lacks something the build needs."""


class AllenCorruptFileError(AllenDataError):
    """A cached file cannot be read (truncated or corrupt); the message names it."""


class AllenNetworkError(AllenDataError):
    """The Allen API could not be reached (or answered with an error)."""


# what h5py, numpy's npz reader and json raise on a truncated or corrupt file
_READ_ERRORS = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile)


def make_api(offline: bool):
    """A ``BrainObservatoryApi`` that never asks the server for what it does not need.

    ``BrainObservatoryCache.get_ophys_experiments`` always queries the list of eye-tracking
    files (to set ``fail_eye_tracking``), even with a warm cache; the builder does not use eye
    tracking, so this object answers that query with an empty list. With ``offline=True``
    every other query and download raises :class:`AllenOfflineError` instead of touching the
    network.
    """
    from allensdk.api.queries.brain_observatory_api import BrainObservatoryApi

    class _CacheFirstApi(BrainObservatoryApi):
        offline_mode = offline

        def template_query(self, template_name, entry_name, **kwargs):
            if entry_name == "all_eye_mapping_files":
                return []
            if self.offline_mode:
                raise AllenOfflineError(
                    f"offline: the Allen cache lacks data that needs the API query {entry_name!r} "
                    f"{kwargs or ''}; run without --offline on a machine with network access"
                )
            return super().template_query(template_name, entry_name, **kwargs)

        def retrieve_file_over_http(self, url, file_path, zipped=False):
            if self.offline_mode:
                raise AllenOfflineError(f"offline: refusing to download {url} to {file_path}")
            return super().retrieve_file_over_http(url, file_path, zipped=zipped)

        def retrieve_parsed_json_over_http(self, url, post=False):
            if self.offline_mode:
                raise AllenOfflineError(f"offline: refusing to query {url}")
            return super().retrieve_parsed_json_over_http(url, post=post)

    return _CacheFirstApi()


@contextlib.contextmanager
def network_errors(what: str, timeout: float):
    """Give socket operations a timeout and turn network failures into :class:`AllenNetworkError`.

    allensdk's JSON queries use ``urllib.request.urlopen`` without a timeout; a process-wide
    default socket timeout (restored afterwards) keeps them from hanging.
    """
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        yield
    except AllenDataError:
        raise
    except (OSError, ValueError) as err:  # URLError, requests' errors and timeouts are OSErrors
        raise AllenNetworkError(
            f"{what}: could not get it from the Allen Brain Observatory API ({API_HOST}): "
            f"{type(err).__name__}: {err}. Check the network connection (timeout {timeout:g} s), "
            f"or build from what the cache already holds with --offline."
        ) from err
    except Exception as err:  # allensdk raises bare Exception('... has no data file')
        raise AllenDataError(f"{what}: the Allen API gave no usable answer: {err}") from err
    finally:
        socket.setdefaulttimeout(old)


@contextlib.contextmanager
def reading(path, what: str):
    """Turn the errors of reading a truncated/corrupt cached file into a clear message."""
    try:
        yield
    except AllenDataError:
        raise
    except _READ_ERRORS as err:
        raise AllenCorruptFileError(
            f"could not read the {what} {str(path)!r} ({type(err).__name__}: {err}). The file is "
            f"probably truncated or corrupt (an interrupted download: allensdk trusts any file that "
            f"exists). Delete it and run again to download it anew:  rm '{path}'"
        ) from err


def download_file(method, experiment_id: int, path, what: str, offline: bool, timeout: float) -> Path:
    """Download one experiment file with the api's ``save_ophys_experiment_*`` method, atomically.

    Does nothing when ``path`` exists. The file is downloaded to a temporary name and renamed
    when complete, so an interrupted download leaves nothing that a later run would trust.
    """
    from .._io import atomic_write

    path = Path(path)
    if path.exists():
        return path
    if offline:
        raise AllenOfflineError(
            f"offline: the {what} of experiment {experiment_id} is not in the cache ({path})"
        )
    with network_errors(f"downloading the {what} of experiment {experiment_id}", timeout):
        with atomic_write(path) as tmp:
            method(experiment_id, str(tmp), strategy="create")
    return path


def ensure_json(getter, path, what: str, offline: bool, timeout: float) -> Path:
    """Make sure a metadata JSON file of the cache exists; download it atomically if not."""
    from allensdk.api.warehouse_cache.cache import Cache

    from .._io import atomic_write

    path = Path(path)
    if path.exists():
        return path
    if offline:
        raise AllenOfflineError(
            f"offline: the Allen cache has no {what} ({path}); run once without --offline to "
            f"download the metadata"
        )
    with network_errors(f"downloading the {what}", timeout):
        with atomic_write(path) as tmp:
            getter(path=str(tmp), strategy="create", pre=lambda rows: [r for r in rows], **Cache.cache_json())
    return path
