"""One small storage interface for the job runner, with two implementations.

A *store* is a prefix under which objects live by relative key ("status.json",
"checkpoints/ckpt-0001.pt"). ``open_store`` picks the implementation from a URI:

- ``s3://bucket/prefix/``: :class:`S3Store` (boto3). The endpoint comes from the explicit
  ``endpoint_url`` argument, else env ``AWS_ENDPOINT_URL`` (how tests and local mode point at a
  local S3 API server), else AWS.
- ``file:///abs/dir/`` or a plain path: :class:`LocalStore`.

Writes are atomic in both: S3 PUTs are all-or-nothing, the local store writes a temporary file
and renames it, so a reader never sees half an object.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from contract import NAMES


class StorageError(Exception):
    """A store could not be reached or an object could not be read or written."""


class PreconditionFailed(StorageError):
    """A conditional write lost: the object changed (or appeared) since the writer last saw it."""


CONDITION_LOST = ("PreconditionFailed", "412", "ConditionalRequestConflict", "NoSuchKey")
"""S3 error codes of a lost conditional write (NoSuchKey: If-Match on an object that is gone)."""


@dataclass(frozen=True)
class Stored:
    """An object's content and its version tag (what a conditional write compares)."""

    data: bytes
    etag: str


@dataclass(frozen=True)
class ObjectInfo:
    """One object in a store: key relative to the store, size in bytes, and a version tag.

    ``etag`` changes whenever the content changes: the S3 ETag, or size + mtime for local files.
    """

    key: str
    size: int
    etag: str


class Store:
    """The interface the job runner uses; keys are relative to the store's prefix."""

    uri: str

    def read(self, key: str) -> Stored | None:
        """The object's content and ETag, or None when it does not exist."""
        raise NotImplementedError

    def get_bytes(self, key: str) -> bytes | None:
        """The object's content, or None when it does not exist."""
        stored = self.read(key)
        return None if stored is None else stored.data

    def put_bytes(self, key: str, data: bytes, *, if_match: str | None = None, if_absent=False) -> str:
        """Write the object; returns its new ETag. ``if_match``: only if it still has that ETag;
        ``if_absent``: only if it does not exist. A lost condition raises :class:`PreconditionFailed`."""
        raise NotImplementedError

    def download(self, key: str, dest: Path) -> None:
        """Copy an object to a local file (atomically: temp file, then rename)."""
        raise NotImplementedError

    def upload(self, src: Path, key: str, tags: dict[str, str] | None = None) -> None:
        """Copy a local file to the object; ``tags`` become its S3 object tags (lifecycle rules match
        them; a local store has none)."""
        raise NotImplementedError

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix``, sorted by key."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove an object; removing a missing object is not an error."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        return any(o.key == key for o in self.list(key))

    def describe(self, key: str = "") -> str:
        """The full URI of a key, for messages."""
        return self.uri + key


def _atomic_write(dest: Path, write) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a store's files are as readable as any other output
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _directory_lock(directory: Path):
    """An exclusive flock on a directory while a conditional write compares and renames: two runners on one
    machine (lease.json) cannot both win. Only this module takes it: lib/store/file-store.ts does not, and
    needs not, since control.json has one requester at a time in local mode."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class LocalStore(Store):
    """A directory on this machine (local mode, tests)."""

    def __init__(self, root: Path):
        self.root = Path(root).absolute()
        self.uri = self.root.as_uri() + "/"

    def _path(self, key: str) -> Path:
        return self.root / key

    def _etag(self, key: str) -> str | None:
        """Size and mtime: what lib/store/file-store.ts compares too."""
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        return f"{st.st_size}-{st.st_mtime_ns}"

    def read(self, key: str) -> Stored | None:
        try:
            etag = self._etag(key)
            return None if etag is None else Stored(self._path(key).read_bytes(), etag)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StorageError(f"cannot read {self.describe(key)}: {e.strerror}") from e

    def put_bytes(self, key: str, data: bytes, *, if_match: str | None = None, if_absent=False) -> str:
        if if_match is None and not if_absent:
            return self._write(key, data)
        try:
            with _directory_lock(self._path(key).parent):
                current = self._etag(key)
                if (if_absent and current is not None) or (if_match is not None and current != if_match):
                    raise PreconditionFailed(f"{self.describe(key)} was changed by another writer")
                return self._write(key, data)
        except OSError as e:
            raise StorageError(f"cannot write {self.describe(key)}: {e.strerror}") from e

    def _write(self, key: str, data: bytes) -> str:
        try:
            _atomic_write(self._path(key), lambda fh: fh.write(data))
        except OSError as e:
            raise StorageError(f"cannot write {self.describe(key)}: {e.strerror}") from e
        return self._etag(key) or ""

    def download(self, key: str, dest: Path) -> None:
        src = self._path(key)
        try:
            with src.open("rb") as fin:
                _atomic_write(Path(dest), lambda fh: shutil.copyfileobj(fin, fh, 1 << 20))
        except OSError as e:
            raise StorageError(f"cannot copy {self.describe(key)} to {dest}: {e.strerror}") from e

    def upload(self, src: Path, key: str, tags: dict[str, str] | None = None) -> None:
        try:
            with Path(src).open("rb") as fin:
                _atomic_write(self._path(key), lambda fh: shutil.copyfileobj(fin, fh, 1 << 20))
        except OSError as e:
            raise StorageError(f"cannot copy {src} to {self.describe(key)}: {e.strerror}") from e

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        if not self.root.is_dir():
            return []
        out = []
        for path in self.root.rglob("*"):
            key = path.relative_to(self.root).as_posix()
            if not path.is_file() or not key.startswith(prefix) or path.name.endswith(".part"):
                continue
            try:
                st = path.stat()
            except FileNotFoundError:  # removed while listing
                continue
            out.append(ObjectInfo(key, st.st_size, f"{st.st_size}-{st.st_mtime_ns}"))
        return sorted(out, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store(Store):
    """An S3 prefix, through boto3."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None = None):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.uri = f"s3://{bucket}/{self.prefix}"
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        # Few, quick retries: an unreachable endpoint should fail in seconds with a clear message,
        # not hang the instance (which bills by the second). The read timeout bounds one socket read, not a
        # transfer: 20 s keeps an endpoint that accepts and never answers to about a minute per call.
        config = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"})
        self.client = boto3.client("s3", endpoint_url=endpoint, config=config)
        self.endpoint = endpoint

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _error(self, action: str, key: str, e: Exception) -> StorageError:
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        where = self.describe(key)
        if isinstance(e, EndpointConnectionError):
            return StorageError(
                f"cannot {action} {where}: the S3 endpoint {self.endpoint or 'of AWS'} is unreachable "
                "(check AWS_ENDPOINT_URL, the network and the region)"
            )
        if isinstance(e, NoCredentialsError):
            return StorageError(
                f"cannot {action} {where}: no AWS credentials (set a profile or instance role)"
            )
        if isinstance(e, ClientError):
            code = e.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                return StorageError(f"cannot {action} {where}: bucket '{self.bucket}' does not exist")
            if code in ("AccessDenied", "403", "Forbidden"):
                return StorageError(f"cannot {action} {where}: access denied: {self._needed(action, key)}")
            return StorageError(f"cannot {action} {where}: {code or e}")
        return StorageError(f"cannot {action} {where}: {e}")

    def _needed(self, action: str, key: str) -> str:
        """The permission a denied call lacks, named with its ARN (the fix for an AccessDenied). A read of a
        missing key is denied too, not answered 404, unless the caller may list the bucket: S3 answers 404
        only with s3:ListBucket, and a GetObject carries no s3:prefix, so a prefix-scoped grant is not enough.
        @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html"""
        bucket_arn = f"arn:aws:s3:::{self.bucket}"
        object_arn = f"{bucket_arn}/{self._key(key)}"
        if action in ("read", "download"):
            return (
                f"the role needs s3:GetObject on {object_arn}, and s3:ListBucket on {bucket_arn} without an "
                "s3:prefix condition (without it a missing object reads as access denied, not as absent)"
            )
        if action in ("write", "upload"):
            return f"the role needs s3:PutObject (and s3:PutObjectTagging for tagged uploads) on {object_arn}"
        if action == "delete":
            return f"the role needs s3:DeleteObject on {object_arn}"
        return f"the role needs s3:ListBucket on {bucket_arn}"

    def read(self, key: str) -> Stored | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return Stored(response["Body"].read(), response["ETag"])
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._error("read", key, e) from e
        except BotoCoreError as e:
            raise self._error("read", key, e) from e

    def put_bytes(self, key: str, data: bytes, *, if_match: str | None = None, if_absent=False) -> str:
        """S3 conditional writes: If-Match answers 412 PreconditionFailed when the ETag differs (404 when the
        object is gone), If-None-Match: * answers 412 when it exists, and 409 ConditionalRequestConflict
        when another conditional write to the key is in flight.
        @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html"""
        from botocore.exceptions import BotoCoreError, ClientError

        conditions = {"IfMatch": if_match} if if_match is not None else {}
        if if_absent:
            conditions["IfNoneMatch"] = "*"
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **conditions)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if conditions and code in CONDITION_LOST:
                raise PreconditionFailed(
                    f"{self.describe(key)} was changed by another writer ({code})"
                ) from e
            raise self._error("write", key, e) from e
        except BotoCoreError as e:
            raise self._error("write", key, e) from e
        return response["ETag"]

    def download(self, key: str, dest: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            self.client.download_file(self.bucket, self._key(key), str(tmp))
            os.replace(tmp, dest)
        except (BotoCoreError, ClientError) as e:
            tmp.unlink(missing_ok=True)
            raise self._error("download", key, e) from e

    def upload(self, src: Path, key: str, tags: dict[str, str] | None = None) -> None:
        from urllib.parse import urlencode

        from botocore.exceptions import BotoCoreError, ClientError

        # Tags go with the upload itself (x-amz-tagging, URL-encoded key=value pairs), so no object is ever
        # untagged: a lifecycle tag filter matches only objects with exactly that key and value.
        # @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html
        # @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-filters.html
        extra = {"Tagging": urlencode(tags)} if tags else None
        try:
            self.client.upload_file(str(src), self.bucket, self._key(key), ExtraArgs=extra)
        except (BotoCoreError, ClientError) as e:
            raise self._error("upload", key, e) from e
        except OSError as e:  # the local file vanished or is unreadable
            raise StorageError(f"cannot upload {src} to {self.describe(key)}: {e.strerror or e}") from e

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        out = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix) :]
                    out.append(ObjectInfo(key, obj["Size"], obj["ETag"].strip('"')))
        except (BotoCoreError, ClientError) as e:
            raise self._error("list", prefix, e) from e
        return sorted(out, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as e:
            raise self._error("delete", key, e) from e


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def local_path(uri: str) -> Path:
    """The local path of a ``file://`` URI or a plain path."""
    if uri.startswith("file://"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise StorageError(f"'{uri}' names host '{parsed.netloc}'; use file:///absolute/path")
        return Path(unquote(parsed.path))
    return Path(uri).expanduser()


def open_store(uri: str, endpoint_url: str | None = None) -> Store:
    """A store for a directory-like URI: ``s3://bucket/prefix/``, ``file:///abs/dir/`` or a path."""
    if is_s3(uri):
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise StorageError(f"'{uri}' has no bucket; write s3://bucket/prefix/")
        return S3Store(parsed.netloc, parsed.path.lstrip("/"), endpoint_url)
    if "://" in uri and not uri.startswith("file://"):
        raise StorageError(f"'{uri}' is neither s3://bucket/prefix/ nor a local path or file:// URI")
    return LocalStore(local_path(uri))


def split_object_uri(uri: str) -> tuple[str, str]:
    """Split an object URI into (directory URI, object name): s3://b/p/job.json -> (s3://b/p/, job.json)."""
    head, sep, name = uri.rstrip("/").rpartition("/")
    if not sep or not name:
        return ".", uri
    return head + "/", name


def read_parameter(name: str, endpoint_url: str | None = None) -> bytes:
    """The value of an SSM parameter. Sweep stacks deliver each config's job.json as the parameter
    /spot-sweep/<sweep>/<config>/job, written by CloudFormation itself (no deploy-time Lambda)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})
    try:
        client = boto3.client("ssm", endpoint_url=endpoint, config=config)
        return client.get_parameter(Name=name)["Parameter"]["Value"].encode()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "ParameterNotFound":
            raise StorageError(f"SSM parameter {name} does not exist") from e
        raise StorageError(f"cannot read SSM parameter {name}: {e}") from e
    except BotoCoreError as e:
        raise StorageError(f"cannot read SSM parameter {name}: {e}") from e


def read_object(uri: str, endpoint_url: str | None = None) -> bytes:
    """The content of one object (s3://..., ssm:/parameter/name, file://... or a path); StorageError
    when it is missing."""
    ssm = NAMES["jobUriSchemes"]["ssm"]
    if uri.startswith(ssm):
        return read_parameter(uri[len(ssm) :], endpoint_url)
    if is_s3(uri):
        directory, name = split_object_uri(uri)
        data = open_store(directory, endpoint_url).get_bytes(name)
        if data is None:
            raise StorageError(f"{uri} does not exist")
        return data
    path = local_path(uri)
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise StorageError(f"{path} does not exist") from e
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e.strerror}") from e
