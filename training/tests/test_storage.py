"""The store interface behaves the same on a local directory and on S3 (a real S3 API server)."""

from __future__ import annotations

import pytest
from jobkit import s3  # noqa: F401 - fixture

from spot_runner.storage import LocalStore, S3Store, StorageError, open_store, read_object, split_object_uri


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    bucket = request.getfixturevalue("s3")
    return open_store(bucket.uri("sweeps/x/c/"))


def test_round_trips_objects_and_lists_them_by_prefix(store, tmp_path):
    assert store.get_bytes("status.json") is None
    store.put_bytes("status.json", b'{"state": "PENDING"}')
    src = tmp_path / "ckpt.pt"
    src.write_bytes(b"x" * 1000)
    store.upload(src, "checkpoints/ckpt-00000001.pt")
    store.put_bytes("checkpoints/ckpt-00000002.pt", b"y" * 10)

    assert store.get_bytes("status.json") == b'{"state": "PENDING"}'
    listed = store.list("checkpoints/")
    assert [(o.key, o.size) for o in listed] == [
        ("checkpoints/ckpt-00000001.pt", 1000),
        ("checkpoints/ckpt-00000002.pt", 10),
    ]
    dest = tmp_path / "down" / "c.pt"
    store.download("checkpoints/ckpt-00000001.pt", dest)
    assert dest.read_bytes() == b"x" * 1000
    store.delete("checkpoints/ckpt-00000001.pt")
    store.delete("checkpoints/never-there.pt")
    assert [o.key for o in store.list()] == ["checkpoints/ckpt-00000002.pt", "status.json"]
    assert store.exists("status.json") and not store.exists("results.json")


def test_etag_changes_when_content_changes(store):
    store.put_bytes("data/pairs.csv", b"a,b\n")
    first = store.list("data/")[0].etag
    store.put_bytes("data/pairs.csv", b"a,b,c\n")
    assert store.list("data/")[0].etag != first


def test_picks_the_implementation_from_the_uri(tmp_path, s3):  # noqa: F811
    assert isinstance(open_store(tmp_path.as_uri() + "/"), LocalStore)
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    s3_store = open_store("s3://bucket/sweeps/a/b")
    assert isinstance(s3_store, S3Store) and s3_store.prefix == "sweeps/a/b/"
    assert split_object_uri("s3://b/sweeps/a/job.json") == ("s3://b/sweeps/a/", "job.json")


def test_fails_when_the_uri_is_not_a_store():
    with pytest.raises(StorageError, match="no bucket"):
        open_store("s3:///prefix/")
    with pytest.raises(StorageError, match="neither"):
        open_store("http://example.com/x/")


def test_fails_when_the_bucket_does_not_exist(s3):  # noqa: F811
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-here' does not exist"):
        open_store("s3://no-such-bucket-here/x/").list()


def test_fails_when_the_endpoint_is_unreachable(s3, monkeypatch):  # noqa: F811
    with pytest.raises(StorageError, match="unreachable"):
        open_store(s3.uri("x/"), endpoint_url="http://127.0.0.1:9").list()


def test_read_object_fails_when_missing(tmp_path, s3):  # noqa: F811
    with pytest.raises(StorageError, match="does not exist"):
        read_object(str(tmp_path / "nope.json"))
    with pytest.raises(StorageError, match="does not exist"):
        read_object(s3.uri("nope/job.json"))


def test_upload_fails_with_a_storage_error_when_the_local_file_vanished(store, tmp_path):
    with pytest.raises(StorageError, match="cannot"):
        store.upload(tmp_path / "dropped-by-the-trainer.pt", "checkpoints/x.pt")


def test_fails_when_a_data_key_leads_outside_the_data_directory(s3, tmp_path):  # noqa: F811
    from spot_runner.fetch import fetch_data
    from spot_runner.runlog import JobError

    s3.put("datasets/evil/pairs.csv", "query_id,doc_id,relevance\n")
    s3.put("datasets/evil/../../escaped.txt", "x")
    dest = tmp_path / "work" / "data"

    with pytest.raises(JobError, match=r"leads outside the data directory"):
        fetch_data(s3.uri("datasets/evil/"), dest, None)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "work" / "escaped.txt").exists()


READ_NEEDS = [
    "s3:GetObject on arn:aws:s3:::b/sweeps/s/c/status.json",
    "s3:ListBucket on arn:aws:s3:::b without",
]
WRITE_NEEDS = ["s3:PutObject", "arn:aws:s3:::b/sweeps/s/c/status.json"]


@pytest.mark.parametrize(
    ("method", "call", "needs"),
    [
        ("get_object", lambda st: st.read("status.json"), READ_NEEDS),
        ("put_object", lambda st: st.put_bytes("status.json", b"{}"), WRITE_NEEDS),
        ("list_objects_v2", lambda st: st.list("checkpoints/"), ["s3:ListBucket on arn:aws:s3:::b"]),
    ],
    ids=["read", "write", "list"],
)
def test_an_access_denied_names_the_permission_and_the_arn(method, call, needs):
    # S3 answers a read of a missing key with 403 to a caller that may not list the bucket (API_GetObject),
    # so "access denied" alone sends people to the wrong fix: the message names what the role lacks.
    from botocore.stub import Stubber

    store = S3Store("b", "sweeps/s/c/", endpoint_url="http://127.0.0.1:9")
    stub = Stubber(store.client)
    stub.add_client_error(method, service_error_code="AccessDenied", http_status_code=403)
    with stub, pytest.raises(StorageError) as caught:
        call(store)
    message = str(caught.value)
    assert "access denied" in message
    for needle in needs:
        assert needle in message, message
