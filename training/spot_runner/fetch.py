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
    inside = dest.resolve()
    for obj in objects:
        if not (dest / obj.key).resolve().is_relative_to(inside):
            raise JobError(
                f"Data file {quote(obj.key)} under {data_uri} has a key that leads outside the data directory"
                f" (a `..` part or an absolute path). Fix: rename the object under {data_uri}."
            )

    def failed(key: str, e: StorageError) -> JobError:
        return JobError(f"Data file {store.describe(key)} could not be fetched: {e}. Fix: check the dataset.")

    fetched, skipped, nbytes = mirror(store, objects, dest, dest / FETCH_MANIFEST, failed)
    log(
        f"data: {fetched} file(s) fetched ({nbytes / 1e6:.1f} MB), {skipped} already present, from {data_uri}"
    )
    return dest


def mirror(store, objects, dest: Path, record_path: Path, failed) -> tuple[int, int, int]:
    """Copies each listed object of ``store`` to ``dest/<key>`` unless the local file is still the one last
    fetched as it: ``record_path`` keeps each key's S3 ETag and size and the local file's size and mtime at
    download, and a file is fetched again when any of them differ (S3 gives an object a new ETag when its
    content changes, where the size may stay the same: https://docs.aws.amazon.com/AmazonS3/latest/API/API_Object.html).
    The record is rewritten after each download, so an interrupted copy resumes where it stopped. A failed
    download raises ``failed(key, error)``. Returns (files fetched, files skipped, bytes fetched)."""
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    if not isinstance(record, dict):
        record = {}
    fetched = skipped = nbytes = 0
    for obj in objects:
        local = dest / obj.key
        seen = record.get(obj.key)
        if (
            isinstance(seen, dict)
            and local.is_file()
            and seen.get("etag") == obj.etag
            and seen.get("size") == obj.size
        ):
            st = local.stat()
            if st.st_size == obj.size and seen.get("mtimeNs") == st.st_mtime_ns:
                skipped += 1
                continue
        try:
            store.download(obj.key, local)
        except StorageError as e:
            raise failed(obj.key, e) from e
        record[obj.key] = {"etag": obj.etag, "size": obj.size, "mtimeNs": local.stat().st_mtime_ns}
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=1))
        fetched += 1
        nbytes += obj.size
    return fetched, skipped, nbytes
