"""fsspec helpers: every path in sdd-ray is a URL (local path, file://, s3://, memory://).

S3 endpoint and credentials come from the standard AWS environment variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...) unless passed as storage options.
"""

from __future__ import annotations

import os
import uuid

import fsspec


def filesystem(url: str, **storage_options) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path within it) for a URL."""
    if url.startswith("s3://") and "endpoint_url" not in storage_options:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            storage_options = dict(storage_options, endpoint_url=endpoint)
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    return fs, path


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])


def write_bytes_atomic(url: str, data: bytes, **storage_options) -> None:
    """Write under a temporary name beside the target, then move it into place, so a reader
    never sees half a file (object stores publish on close; local files are renamed)."""
    fs, path = filesystem(url, **storage_options)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[-1]}" if parent else f".tmp-{uuid.uuid4().hex}"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)
