"""Where inputs are read and outputs written: a local folder or an object-storage prefix.

A :class:`Storage` is one root, listed, read and checked through the same fsspec calls
whether it is a local folder (fsspec's local filesystem) or a URL (``s3://`` through s3fs;
``gs://``, ``az://``, ``memory://`` ... with their fsspec package). Files under it are named
by their ``/``-separated path relative to the root, the path a run mirrors from IN to OUT.
Credentials: docs/ray.md.

Writes never leave a broken file behind: a local write renames a temporary file; an object
store takes the object whole, in one PUT (or one multipart upload, visible only once
complete); any other fsspec filesystem gets a hidden temporary name, then a move. A Storage
pickles as its URL and options, so each Ray worker opens its own client.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import fsspec

from facecolor.errors import FacecolorError
from facecolor.files import write_atomically

STORAGE_OPTIONS_ENV = "FACECOLOR_STORAGE_OPTIONS"
# Filesystems whose single write of a whole object is atomic: no temporary name needed.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
# Where each protocol's fsspec implementation comes from, for the "install it" message.
PROTOCOL_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


class StorageError(FacecolorError, OSError):
    """A folder or bucket that cannot be listed, read or written; the message says the fix."""


def is_url(location: str | os.PathLike) -> bool:
    """True for ``scheme://...`` locations other than ``file://``."""
    match = _URL.match(str(location))
    return bool(match) and match.group(1).lower() != "file"


@contextlib.contextmanager
def _explained(what: str, keep: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Turn a client's own error (botocore and aiohttp raise their own types) into a
    StorageError that says what to do; errors of the ``keep`` types pass as they are."""
    try:
        yield
    except keep:
        raise
    except Exception as error:
        name = type(error).__name__
        text = f"{what}: {name}: {error}"
        if name in ("NoCredentialsError", "PartialCredentialsError") or "credential" in str(error).lower():
            text += ("; give credentials with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE "
                     "or an instance role (on a Ray cluster: on every node)")
        elif isinstance(error, PermissionError) or "AccessDenied" in str(error):
            text += "; the credentials lack permission for this bucket or prefix"
        elif isinstance(error, FileNotFoundError):
            text += "; check the bucket and prefix (and AWS_ENDPOINT_URL for a non-AWS server)"
        elif "Could not connect" in str(error) or "Connect" in name:
            text += "; check AWS_ENDPOINT_URL (or storage option endpoint_url) and the network"
        raise StorageError(text) from error


class Storage:
    """One root: a local folder or an fsspec URL prefix. Paths below it are relative, ``/``."""

    def __init__(self, location: str | os.PathLike, storage_options: Mapping[str, Any] | None = None):
        self.location = str(location)
        self.storage_options = dict(storage_options or {})
        self.is_local = not is_url(self.location)
        self.protocol = "file" if self.is_local else _URL.match(self.location).group(1).lower()
        try:
            # A client of our own: fsspec's shared instances would keep the endpoint and
            # credentials of whichever run made them first in this process.
            self.fs = fsspec.filesystem(self.protocol, **{"skip_instance_cache": True, **self.storage_options})
        except (ImportError, ValueError) as error:
            package = PROTOCOL_PACKAGES.get(self.protocol, f"the fsspec implementation of {self.protocol}://")
            raise StorageError(f"{self.location}: cannot open {self.protocol}:// ({error}); "
                               f"pip install {package}") from error
        if self.is_local:
            path = self.location.removeprefix("file://")
            self.root_path = Path(os.path.abspath(os.path.expanduser(path)))  # as the runtime's walk
            self.root = str(self.root_path)
        else:
            self.root_path = None
            self.root = self.fs._strip_protocol(self.location).rstrip("/")

    def __reduce__(self):  # URL and options, never a live client
        return (Storage, (self.location, self.storage_options))

    def __repr__(self) -> str:
        return f"Storage({self.location!r})"

    # -- naming ---------------------------------------------------------------------------
    def full(self, rel: str) -> str:
        """The native path of ``rel``, never outside the root: an absolute local path, or ``bucket/key``."""
        rel = rel.replace("\\", "/").lstrip("/")
        parts = [part for part in rel.split("/") if part not in ("", ".")]
        if not parts or ".." in parts:
            raise StorageError(f"not a relative path inside the root: {rel!r}")
        if self.is_local:
            return str(self.root_path.joinpath(*parts))
        return f"{self.root}/{'/'.join(parts)}"

    def url(self, rel: str) -> str:
        """``rel`` as the user would write it: a local path, or ``s3://bucket/key``."""
        return self.full(rel) if self.is_local else f"{self.protocol}://{self.full(rel)}"

    def _real_root(self) -> str:
        """The root to compare roots by: a local folder with its symlinks resolved."""
        return os.path.realpath(self.root) if self.is_local else self.root

    def contains(self, other: Storage) -> bool:
        """True when ``other`` is this root or lies inside it (same filesystem)."""
        mine, theirs = self._real_root(), other._real_root()
        inside = theirs == mine or theirs.startswith(mine.rstrip("/") + "/")
        return self.protocol == other.protocol and inside

    def relative_to_me(self, other: Storage) -> str | None:
        """``other``'s root relative to this one, when it lies strictly inside it."""
        if not self.contains(other):
            return None
        return other._real_root()[len(self._real_root()):].strip("/") or None

    # -- reading --------------------------------------------------------------------------
    def check_readable_root(self) -> None:
        """Raise StorageError unless the root exists and is a folder (or prefix)."""
        with _explained(f"cannot list {self.location}"):
            exists = self.fs.isdir(self.root)
        if not exists:
            raise StorageError(f"{self.location} is not a folder" if self.is_local
                               else f"{self.location}: no such bucket or prefix (or it holds no objects)")

    def check_writable_root(self) -> None:
        """Raise StorageError when OUT cannot be written at all (no bucket, no permission)
        before any work is done; a local root is created."""
        if self.is_local:
            self.makedirs()
            if not os.access(self.root_path, os.W_OK | os.X_OK):
                raise StorageError(f"{self.location} is not writable")
            return
        bucket = self.root.split("/", 1)[0]
        with _explained(f"cannot reach {self.protocol}://{bucket}"):
            exists = self.fs.exists(bucket)
        if not exists:
            raise StorageError(f"{self.protocol}://{bucket} does not exist (or these credentials cannot see it): "
                               "create the bucket first")

    def iter_files(self, exclude_prefix: str | None = None) -> Iterator[str]:
        """The relative path of every file below the root, sorted, but for hidden names
        (temporary files) and ``exclude_prefix`` (OUT inside IN is never re-read). An object
        store is listed by name only: about 100 bytes per object in memory. Local inputs go
        through ``walk`` instead (symlink rules, image sniffing)."""
        with _explained(f"cannot list {self.location}"):
            self.fs.invalidate_cache(self.root)
            found = self.fs.find(self.root, withdirs=False, detail=False)
        # fsspec lists a local symlink as a file (and never descends into one): skip them all
        names = (name[len(self.root):].lstrip("/") for name in found
                 if not name.endswith("/") and not (self.is_local and os.path.islink(name)))
        excluded = exclude_prefix.strip("/") + "/" if exclude_prefix else None
        for rel in sorted(names):
            if not rel or any(part.startswith(".") for part in rel.split("/")):
                continue
            if excluded and (rel + "/").startswith(excluded):
                continue
            yield rel

    def read_bytes(self, rel: str, max_bytes: int | None = None) -> bytes:
        """The file's bytes, or only its first ``max_bytes + 1`` when ``max_bytes`` is given
        (one ranged read: a caller sees that the file is larger than it accepts without
        holding all of it). FileNotFoundError, PermissionError or StorageError on failure:
        the caller records it as that one input's failure."""
        end = None if max_bytes is None else max_bytes + 1
        with _explained(f"cannot read {self.url(rel)}", keep=(FileNotFoundError, PermissionError)):
            return self.fs.cat_file(self.full(rel), start=None if end is None else 0, end=end)

    # -- writing --------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``rel`` so that no reader ever sees a partial file."""
        target = self.full(rel)
        if self.is_local:
            write_atomically(target, data, fixed_temp=True)  # the runtime's temp file + rename
            return
        with _explained(f"cannot write {self.url(rel)}"):
            if self.protocol in OBJECT_STORES:
                self.fs.pipe_file(target, data)
            else:
                parent, name = posixpath.split(target)
                tmp = f"{parent}/.{name}.{os.getpid()}.tmp"
                self.fs.makedirs(parent, exist_ok=True)
                self.fs.pipe_file(tmp, data)
                self.fs.mv(tmp, target)

    def makedirs(self) -> None:
        """Create the root (a no-op on object stores, where prefixes need no creation)."""
        if self.protocol in OBJECT_STORES:
            return
        try:
            self.fs.makedirs(self.root, exist_ok=True)
        except OSError as error:
            raise StorageError(f"cannot create {self.location}: {error}") from error


def open_storage(location: str | os.PathLike | Storage, storage_options: Mapping[str, Any] | None = None) -> Storage:
    """A :class:`Storage` for ``location``; a URL's options default to ``FACECOLOR_STORAGE_OPTIONS``
    (a JSON object)."""
    if isinstance(location, Storage):
        return location
    raw = os.environ.get(STORAGE_OPTIONS_ENV, "").strip()
    if storage_options is None and is_url(location) and raw:
        try:
            storage_options = json.loads(raw)
        except json.JSONDecodeError as error:
            raise StorageError(f"{STORAGE_OPTIONS_ENV} is not JSON ({error}); set it to e.g. "
                               '\'{"endpoint_url": "http://127.0.0.1:9000"}\'') from error
        if not isinstance(storage_options, dict):
            raise StorageError(f"{STORAGE_OPTIONS_ENV} must be a JSON object, not {type(storage_options).__name__}")
    return Storage(location, storage_options)
