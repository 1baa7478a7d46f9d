"""The dataset on local disk: a local directory in place, an S3 prefix copied once (a digest cache beside
the data skips files already there with the same content)."""

from __future__ import annotations

import json
from pathlib import Path

from .quote import quote
from .runlog import JobError, log
from .storage import StorageError, is_s3, local_path, open_store

FETCH_MANIFEST = ".spot-sweep-fetch.json"


def fetch_data(data_uri: str, dest: Path, endpoint_url: str | None) -> Path:
    """The dataset on local disk. A local directory is used in place. An S3 prefix is copied into
    ``dest``, skipping files already there with the same content: a manifest beside the data
    records each file's S3 ETag and size and the local file's size and mtime at download; a file
    is fetched again when any of them differ."""
    if not is_s3(data_uri):
        path = local_path(data_uri)
        if not path.is_dir() or not any(path.iterdir()):
            raise JobError(
                f"Data directory {path} (job field `data`) does not exist or is empty. "
                "Fix: create the dataset there or point `data` at it."
            )
        return path
    try:
        store = open_store(data_uri, endpoint_url)
        objects = [o for o in store.list() if not o.key.endswith("/")]
    except StorageError as e:
        raise JobError(
            f"Data {data_uri} (job field `data`) is unreachable: {e}. "
            "Fix: upload the dataset there or correct `data`."
        ) from e
    if not objects:
        raise JobError(
            f"Data {data_uri} (job field `data`) holds no files. "
            "Fix: upload the dataset there or correct `data`."
        )
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / FETCH_MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        manifest = {}
    fetched = skipped = 0
    nbytes = 0
    inside = dest.resolve()
    for obj in objects:
        local = dest / obj.key
        if not local.resolve().is_relative_to(inside):
            raise JobError(
                f"Data file {quote(obj.key)} under {data_uri} has a key that leads outside the data directory"
                f" (a `..` part or an absolute path). Fix: rename the object under {data_uri}."
            )
        seen = manifest.get(obj.key, {})
        if local.is_file() and seen.get("etag") == obj.etag and seen.get("size") == obj.size:
            st = local.stat()
            if st.st_size == obj.size and seen.get("mtimeNs") == st.st_mtime_ns:
                skipped += 1
                continue
        try:
            store.download(obj.key, local)
        except StorageError as e:
            raise JobError(
                f"Data file {store.describe(obj.key)} could not be fetched: {e}. Fix: check the dataset."
            ) from e
        st = local.stat()
        manifest[obj.key] = {"etag": obj.etag, "size": obj.size, "mtimeNs": st.st_mtime_ns}
        manifest_path.write_text(json.dumps(manifest, indent=1))
        fetched += 1
        nbytes += obj.size
    log(
        f"data: {fetched} file(s) fetched ({nbytes / 1e6:.1f} MB), {skipped} already present, from {data_uri}"
    )
    return dest
