"""Where searches keep their trials, checkpoints and results: a local folder or S3.

Details: docs/modules.md, section ``spiking.artifacts.storage``.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from spiking.errors import SpikingError

DEFAULT_STORAGE = "runs/tune"
ENDPOINT_VARS = ("SPIKING_S3_ENDPOINT", "AWS_ENDPOINT_URL")
REGION_VARS = ("AWS_REGION", "AWS_DEFAULT_REGION")


class StorageError(SpikingError):
    """The storage location is malformed, unreachable or not writable."""


def _env(*names: str) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


def s3_filesystem() -> pafs.S3FileSystem:
    """An ``S3FileSystem`` configured from the environment variables (see module doc)."""
    kw: dict = {"connect_timeout": 10.0, "request_timeout": 60.0}
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        kw.update(access_key=key, secret_key=secret)
        if os.environ.get("AWS_SESSION_TOKEN"):
            kw["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    elif key or secret:
        raise StorageError("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
    region = _env(*REGION_VARS)
    if region:
        kw["region"] = region
    endpoint = _env(*ENDPOINT_VARS)
    if endpoint:
        if "://" in endpoint:
            u = urlparse(endpoint)
            if u.scheme not in ("http", "https") or not u.netloc:
                raise StorageError(f"S3 endpoint {endpoint!r} must look like http(s)://host[:port]")
            kw.update(scheme=u.scheme, endpoint_override=u.netloc + u.path.rstrip("/"))
        else:
            kw["endpoint_override"] = endpoint
        # MinIO and most S3-compatible servers want path-style addressing.
        kw["force_virtual_addressing"] = False
    try:
        return pafs.S3FileSystem(**kw)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for bad settings
        raise StorageError(f"cannot configure S3 from the environment ({sorted(kw)}): {e}") from None


def resolve_storage(uri: str | os.PathLike | None = None) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path)`` of a storage location (see module doc). Nothing is checked or created.

    Raises:
        StorageError: an unsupported scheme or an S3 URI without a bucket.
    """
    uri = os.fspath(uri) if uri is not None else DEFAULT_STORAGE
    if not uri:
        raise StorageError("empty storage location")
    scheme = urlparse(uri).scheme if "://" in uri else ""
    if scheme in ("", "file"):
        path = urlparse(uri).path if scheme == "file" else uri
        return pafs.LocalFileSystem(), str(Path(path).expanduser().absolute())
    if scheme == "s3":
        u = urlparse(uri)
        if not u.netloc:
            raise StorageError(f"S3 storage {uri!r} needs a bucket: s3://bucket/prefix")
        path = posixpath.join(u.netloc, u.path.lstrip("/")).rstrip("/")
        return s3_filesystem(), path
    raise StorageError(f"unsupported storage {uri!r}: use a local folder or s3://bucket/prefix")


def is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def to_uri(fs: pafs.FileSystem, path: str) -> str:
    """A printable URI for ``path`` on ``fs`` (``s3://...`` or the local path)."""
    return path if is_local(fs) else f"{fs.type_name}://{path}"


def join(fs: pafs.FileSystem, *parts: str) -> str:
    return os.path.join(*parts) if is_local(fs) else posixpath.join(*parts)


def check_writable(fs: pafs.FileSystem, path: str) -> None:
    """Create ``path`` if needed, then write, read back and delete a probe file in it.

    Raises:
        StorageError: naming the location and what failed (a file in the way,
        permission denied, bucket missing, endpoint unreachable, ...).
    """
    where = to_uri(fs, path)
    try:
        info = fs.get_file_info(path)
    except Exception as e:
        raise StorageError(f"storage {where} is not reachable: {e}") from None
    if info.type == pafs.FileType.File:
        raise StorageError(f"storage {where} is a file, not a folder")
    probe = join(fs, path, f".spiking-probe-{uuid.uuid4().hex}")
    payload = b"spiking storage probe\n"
    try:
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(probe) as fh:
            fh.write(payload)
        with fs.open_input_stream(probe) as fh:
            back = fh.read()
        fs.delete_file(probe)
    except Exception as e:
        raise StorageError(f"storage {where} is not writable: {type(e).__name__}: {e}") from None
    if back != payload:
        raise StorageError(f"storage {where}: a probe file read back differently from what was written")


def open_storage(uri: str | os.PathLike | None = None) -> tuple[pafs.FileSystem, str]:
    """:func:`resolve_storage` then :func:`check_writable`; returns ``(filesystem, path)``."""
    fs, path = resolve_storage(uri)
    check_writable(fs, path)
    return fs, path


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_file(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type == pafs.FileType.File


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as fh:
        return fh.read()


def write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write a file (atomically on a local disk: temporary name, then rename)."""
    parent = os.path.dirname(path) if is_local(fs) else posixpath.dirname(path)
    fs.create_dir(parent, recursive=True)
    if is_local(fs):
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with fs.open_output_stream(tmp) as fh:
            fh.write(data)
        os.replace(tmp, path)
    else:
        with fs.open_output_stream(path) as fh:
            fh.write(data)


def write_text(fs: pafs.FileSystem, path: str, text: str) -> None:
    write_bytes(fs, path, text.encode("utf-8"))


def read_text(fs: pafs.FileSystem, path: str) -> str:
    return read_bytes(fs, path).decode("utf-8")

