"""job.json ``encoder``: a dataset's texts encoded by a sentence-transformers model (two_tower.encode_texts),
cached in the store per (encoder, texts) (spot_runner.embedding_cache), and trained on by the job runner.

Every model here is built offline by two_tower.tiny_encoder: nothing comes from a hub."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from jobkit import (
    job_doc,
    run_job,
    s3,  # noqa: F401 - fixture
)

from contract import sha256_file
from spot_runner.embedding_cache import MANIFEST, EmbeddingCache, cache_key, cache_root
from spot_runner.jobfile import parse_job
from spot_runner.runlog import JobError
from two_tower import encode_texts, import_data, tiny_encoder
from two_tower.data import load_dataset

pytestmark = pytest.mark.timeout(300)  # sentence-transformers alone takes ~13 s to import on a 2-core box

WORDS = "apple banana cherry river mountain train ticket price cheap fast slow red blue green house garden"


def _table(path: Path, rows: int = 40, seed: int = 0) -> Path:
    """A (query, doc, label) CSV as a user would bring it to `spot-sweep data import`."""
    rng = np.random.default_rng(seed)
    words = WORDS.split()
    lines = ["query,doc,label"]
    for _ in range(rows):
        query = " ".join(rng.choice(words, 3, replace=False))
        lines.append(f"{query},{query} {' '.join(rng.choice(words, 3))},1")
        lines.append(f"{query},{' '.join(rng.choice(words, 5))},0")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An imported text dataset and a tiny encoder built from its texts."""
    root = tmp_path_factory.mktemp("encoder")
    data = root / "data"
    assert import_data.main([str(_table(root / "table.csv")), "--out", str(data)]) == 0
    model = tiny_encoder.build(
        root / "model",
        tiny_encoder.read_texts(data / "queries.csv") + tiny_encoder.read_texts(data / "docs.csv"),
    )
    return data, model


def _texts(path: Path) -> list[str]:
    return tiny_encoder.read_texts(path)


def test_the_tiny_model_encodes_as_sentence_transformers_does(world, tmp_path):
    data, model = world
    out = tmp_path / "emb"
    stats = encode_texts.encode(data, str(model), out, batch_size=7, device="cpu")
    from sentence_transformers import SentenceTransformer

    direct = SentenceTransformer(str(model), device="cpu")
    for side, file in (("query", "queries.csv"), ("doc", "docs.csv")):
        ours = np.load(out / f"{side}_embeddings.npy")
        theirs = direct.encode(_texts(data / file), normalize_embeddings=True, convert_to_numpy=True)
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
        assert ours.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert stats["texts"] == len(_texts(data / "queries.csv")) + len(_texts(data / "docs.csv"))
    # The trainer reads it as an embeddings dataset, the pairs resolved against the ids written.
    loaded = load_dataset(out)
    assert loaded.kind == "embeddings" and loaded.input_dim == 32
    assert loaded.num_pairs == 80
    assert not list(tmp_path.glob(".emb.tmp-*")), "the staging directory is renamed, not left behind"


def test_fails_when_the_texts_file_is_missing(world, tmp_path, capsys):
    data, model = world
    bad = tmp_path / "data"
    shutil.copytree(data, bad)
    (bad / "docs.csv").unlink()
    assert encode_texts.main(["--data", str(bad), "--encoder", str(model), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "docs.csv" in err and "missing" in err and "Fix:" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_fails_when_a_text_is_empty_naming_the_line(world, tmp_path, capsys):
    data, model = world
    bad = tmp_path / "data"
    shutil.copytree(data, bad)
    lines = (bad / "queries.csv").read_text().splitlines()
    lines[2] = lines[2].split(",")[0] + ","
    (bad / "queries.csv").write_text("\n".join(lines) + "\n")
    assert encode_texts.main(["--data", str(bad), "--encoder", str(model), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "queries.csv" in err and "line 3, column text" in err and "text is empty" in err and "Fix:" in err


def test_fails_when_the_encoder_directory_is_not_a_sentence_transformers_model(world, tmp_path, capsys):
    data, _ = world
    plain = tmp_path / "not-a-model"
    plain.mkdir()
    (plain / "config.json").write_text("{}")
    assert (
        encode_texts.main(["--data", str(data), "--encoder", str(plain), "--out", str(tmp_path / "o")]) == 2
    )
    err = capsys.readouterr().err
    assert str(plain) in err and "modules.json" in err and "Fix:" in err and "Traceback" not in err


def _job(root: Path, config: str, data: Path, encoder: str) -> dict:
    store = root / "sweeps" / "test-sweep" / config
    store.mkdir(parents=True, exist_ok=True)
    doc = job_doc(store.as_uri() + "/", str(data), config=config, encoder=encoder)
    doc["train"].update(folds=2, epochs=1)
    (store / "job.json").write_text(json.dumps(doc))
    return doc


def test_the_cache_is_reused_and_a_damaged_entry_is_encoded_again(world, tmp_path, capsys):
    data, model = world
    first = EmbeddingCache(_job(tmp_path, "a", data, str(model)), tmp_path / "work-a", None, _env())
    trainer_data = first.prepare(data)
    assert first.encoded
    entries = list((tmp_path / "cache" / "embeddings").iterdir())
    assert len(entries) == 1 and (entries[0] / MANIFEST).is_file()
    manifest = json.loads((entries[0] / MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(encode_texts.EMBEDDING_FILES)
    assert (trainer_data / "pairs.csv").read_bytes() == (data / "pairs.csv").read_bytes()

    # Another config, another machine (work directory), the same encoder and texts: no encoding.
    capsys.readouterr()
    second = EmbeddingCache(_job(tmp_path, "b", data, str(model)), tmp_path / "work-b", None, _env())
    again = second.prepare(data)
    assert not second.encoded
    assert "cache hit" in capsys.readouterr().err
    for name in encode_texts.EMBEDDING_FILES:
        assert (again / name).read_bytes() == (trainer_data / name).read_bytes()

    # A truncated object in the store is caught by its digest, never used, and replaced.
    cached = entries[0] / "doc_embeddings.npy"
    good = cached.read_bytes()
    cached.write_bytes(good[: len(good) // 2])
    third = EmbeddingCache(_job(tmp_path, "c", data, str(model)), tmp_path / "work-c", None, _env())
    used = third.prepare(data)
    assert third.encoded
    assert "does not match its digest" in capsys.readouterr().err
    assert cached.read_bytes() == good and (used / "doc_embeddings.npy").read_bytes() == good


def test_an_s3_encoder_is_fetched_and_keyed_by_its_files(world, tmp_path, s3):  # noqa: F811
    data, model = world
    s3.upload_dir(model, "models/tiny/")
    job = _job(tmp_path, "a", data, s3.uri("models/tiny/"))
    cache = EmbeddingCache(job, tmp_path / "work", s3.endpoint, _env())
    used = cache.prepare(data)
    assert cache.encoded and (used / "query_embeddings.npy").is_file()
    # The same files from a local directory are the same encoder: the entry is shared.
    local = EmbeddingCache(_job(tmp_path, "b", data, str(model)), tmp_path / "work-b", None, _env())
    local.prepare(data)
    assert not local.encoded


def test_fails_when_an_s3_encoder_has_no_modules_json(world, tmp_path, s3):  # noqa: F811
    data, _ = world
    s3.put("models/empty/config.json", "{}")
    job = _job(tmp_path, "a", data, s3.uri("models/empty/"))
    with pytest.raises(JobError) as e:
        EmbeddingCache(job, tmp_path / "work", s3.endpoint, _env()).prepare(data)
    assert "modules.json" in e.value.message and "Fix:" in e.value.message and e.value.code == 2


def test_the_key_changes_with_the_encoder_the_texts_and_the_layout():
    texts = {"queries.csv": "a" * 64, "docs.csv": "b" * 64}
    base = cache_key(1, "dir:x", texts)
    assert base != cache_key(1, "dir:y", texts)
    assert base != cache_key(1, "dir:x", {**texts, "docs.csv": "c" * 64})
    assert base != cache_key(2, "dir:x", texts)
    assert cache_root("s3://b/sweeps/s/c/", "s", "c") == "s3://b/"
    assert cache_root("file:///w/store/", "s", "c") == "file:///w/store/"


def test_a_job_with_an_encoder_fails_when_the_data_has_no_texts(world, tmp_path):
    _, model = world
    embeddings = tmp_path / "emb-data"
    embeddings.mkdir()
    (embeddings / "pairs.csv").write_text("query_id,doc_id,relevance\nq,d,1\n")
    job = _job(tmp_path, "a", embeddings, str(model))
    with pytest.raises(JobError) as e:
        EmbeddingCache(job, tmp_path / "work", None, _env()).prepare(embeddings)
    assert "queries.csv" in e.value.message and "Fix:" in e.value.message and e.value.code == 2


def test_fails_when_a_script_job_names_an_encoder(tmp_path):
    doc = job_doc(
        "file:///w/",
        None,
        script={"code": "/c", "entrypoint": "t.py", "args": [], "patches": [], "results": "r/**"},
        encoder="org/model",
    )
    with pytest.raises(JobError) as e:
        parse_job(json.dumps(doc).encode(), "job.json")
    assert "`encoder` must be null in a script job" in e.value.message


def test_a_job_with_an_encoder_trains_on_the_encoded_texts_and_a_second_config_reuses_them(world, tmp_path):
    data, model = world
    for config in ("first", "second"):
        _job(tmp_path, config, data, str(model))
        store = tmp_path / "sweeps" / "test-sweep" / config
        done = run_job(str(store / "job.json"), tmp_path / f"work-{config}", timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        results = json.loads((store / "results.json").read_text())
        assert json.loads((store / "status.json").read_text())["state"] == "SUCCEEDED"
        assert 0 <= results["ndcg10"]["mean"] <= 1 and "doc_embeddings.npy" in results["data"]
        phases = [p["name"] for p in results["job"]["setup"]["phases"]]
        assert "encode-texts" in phases
        if config == "first":
            assert "embeddings: encoding" in done.stderr and "cache hit" not in done.stderr
            # The encoder's own lines reach the store's log as they come, progress bars left out.
            log = (store / "train.log").read_text()
            assert re.search(r"^encoded \d+ texts into \d+-d vectors", log, re.M) and "it/s]" not in log
        else:
            assert "cache hit" in done.stderr and "embeddings: encoding" not in done.stderr
            assert "embeddings: cache hit" in (store / "train.log").read_text()  # the story, in the store
    assert len(list((tmp_path / "cache" / "embeddings").iterdir())) == 1


def _env() -> dict:
    from jobkit import child_env

    return child_env()


def test_a_python_without_the_pinned_packages_gets_them_through_the_script_requirements_venv(
    monkeypatch, tmp_path
):
    """On an instance whose Python lacks sentence-transformers, requirements.install (its venv layered on the
    job's Python, its wheel cache) installs training/requirements-encoder.txt; a Python that has the pins is
    used as it is."""
    from spot_runner import embedding_cache

    calls = []

    def install(code_dir, name, work, cache_uri=None, endpoint_url=None):
        calls.append((code_dir, name, work, cache_uri, endpoint_url))
        return "/venv/bin/python"

    monkeypatch.setattr(embedding_cache, "install_requirements", install)
    monkeypatch.setenv("SPOT_SWEEP_WHEEL_CACHE", "s3://artifacts/cache/wheels")
    assert embedding_cache.encoder_python(tmp_path, "http://s3") == sys.executable  # this venv has the pins
    monkeypatch.setattr(embedding_cache.metadata, "version", lambda name: "0.0.0")
    assert embedding_cache.encoder_python(tmp_path, "http://s3") == "/venv/bin/python"
    assert calls == [
        (
            embedding_cache.PACKAGE_ROOT,
            "requirements-encoder.txt",
            tmp_path,
            "s3://artifacts/cache/wheels",
            "http://s3",
        )
    ]


# The encoder recorded: encoder.json (encode_texts) -> model.json (the trainer) -> checked by encode.

TRAIN_SMALL = ["--folds", "2", "--epochs", "1", "--batch-size", "16", "--hidden-dim", "16"]


def _encode_model(model: Path, data: Path, out: Path):
    from conftest import subprocess_env

    cmd = [sys.executable, "-m", "two_tower.encode", "--model", str(model), "--data", str(data)]
    return subprocess.run(
        [*cmd, "--out", str(out), "--device", "cpu"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(encode_texts.__file__).parent.parent,
    )


@pytest.fixture(scope="module")
def trained_on_encoded(world, tmp_path_factory):
    """The world's texts encoded by its tiny encoder and a model trained on those vectors."""
    from conftest import run_trainer

    data, model = world
    root = tmp_path_factory.mktemp("trained")
    vectors = root / "vectors"
    assert encode_texts.main(["--data", str(data), "--encoder", str(model), "--out", str(vectors)]) == 0
    done = run_trainer("--data", str(vectors), "--out", str(root / "out"), *TRAIN_SMALL, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return vectors, root / "out" / "model"


def test_the_trained_model_records_the_encoder_its_vectors_came_from(world, trained_on_encoded):
    _, model = world
    vectors, model_dir = trained_on_encoded
    written = json.loads((vectors / encode_texts.ENCODER_FILE).read_text())
    assert written == {
        "version": 1,
        "name": str(model),
        "identity": "dir:" + encode_texts.directory_digest(model),
    }
    recorded = json.loads((model_dir / "model.json").read_text())["encoder"]
    assert recorded == {"name": str(model), "identity": written["identity"]}


def test_encode_uses_vectors_from_the_model_s_encoder(trained_on_encoded, tmp_path):
    vectors, model_dir = trained_on_encoded
    done = _encode_model(model_dir, vectors, tmp_path / "enc")
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr and (tmp_path / "enc" / "topk.csv").is_file()


def test_fails_when_the_vectors_come_from_another_encoder(world, trained_on_encoded, tmp_path):
    data, _ = world
    _, model_dir = trained_on_encoded
    other = tiny_encoder.build(tmp_path / "other-model", _texts(data / "queries.csv"), seed=1)  # same width
    vectors = tmp_path / "other-vectors"
    assert encode_texts.main(["--data", str(data), "--encoder", str(other), "--out", str(vectors)]) == 0
    done = _encode_model(model_dir, vectors, tmp_path / "enc")
    assert done.returncode == 2, done.stderr
    err = done.stderr
    assert str(vectors / "encoder.json") in err and str(model_dir / "model.json") in err
    assert "encode the texts with the model's encoder" in err and str(other) in err
    assert "Traceback" not in err and not (tmp_path / "enc" / "topk.csv").exists()


def test_vectors_without_encoder_json_are_used_with_a_warning(trained_on_encoded, tmp_path):
    vectors, model_dir = trained_on_encoded
    bare = tmp_path / "bare"
    shutil.copytree(vectors, bare)
    (bare / encode_texts.ENCODER_FILE).unlink()
    done = _encode_model(model_dir, bare, tmp_path / "enc")
    assert done.returncode == 0, done.stderr
    assert "warning:" in done.stderr and "encoder.json is missing" in done.stderr
    assert (tmp_path / "enc" / "topk.csv").is_file()


def test_the_job_s_encoder_json_holds_the_identity_the_cache_key_used(world, tmp_path):
    data, model = world
    cache = EmbeddingCache(_job(tmp_path, "a", data, str(model)), tmp_path / "work", None, _env())
    used = cache.prepare(data)
    record = json.loads((used / encode_texts.ENCODER_FILE).read_text())
    identity = "dir:" + encode_texts.directory_digest(model)
    assert record["identity"] == identity and record["name"] == str(model)
    texts = {n: sha256_file(data / n) for n in ("queries.csv", "docs.csv")}
    assert (
        tmp_path / "cache" / "embeddings" / cache_key(encode_texts.LAYOUT_VERSION, identity, texts)
    ).is_dir()


# An s3:// encoder's local copy follows the prefix.


def test_an_s3_encoder_re_uploaded_with_the_same_size_changes_the_key(world, tmp_path, s3):  # noqa: F811
    from spot_runner.embedding_cache import Encoder

    _, model = world
    s3.upload_dir(model, "models/tiny/")
    uri = s3.uri("models/tiny/")
    first = Encoder(uri, tmp_path / "work", s3.endpoint).identity
    assert Encoder(uri, tmp_path / "work", s3.endpoint).identity == first  # nothing changed: same key
    modules = (model / "modules.json").read_bytes()
    changed = modules.replace(b"[", b" ", 1) if b"[" in modules else modules[:-1] + b" "
    assert len(changed) == len(modules) and changed != modules
    s3.put("models/tiny/modules.json", changed)
    second = Encoder(uri, tmp_path / "work", s3.endpoint)
    assert second.identity != first
    assert (Path(second.arg) / "modules.json").read_bytes() == changed


def test_a_file_removed_from_an_s3_encoder_is_removed_locally_and_changes_the_key(
    world,
    tmp_path,
    s3,  # noqa: F811
):
    from spot_runner.embedding_cache import Encoder

    _, model = world
    s3.upload_dir(model, "models/tiny/")
    s3.put("models/tiny/extra.txt", "stale")
    uri = s3.uri("models/tiny/")
    first = Encoder(uri, tmp_path / "work", s3.endpoint)
    assert (Path(first.arg) / "extra.txt").is_file()
    s3.client.delete_object(Bucket=s3.name, Key="models/tiny/extra.txt")
    second = Encoder(uri, tmp_path / "work", s3.endpoint)
    assert not (Path(second.arg) / "extra.txt").exists()
    assert second.identity == "dir:" + encode_texts.directory_digest(model) != first.identity


# A hub name: its commit when it can be resolved, else the name only and a recommendation to pin.


def test_an_unpinned_hub_name_is_keyed_by_the_commit_it_resolves_to():
    identity, note = encode_texts.encoder_identity("org/model", lambda name, rev: "abc123")
    assert identity == "hub:org/model@abc123" and note is None
    # The same weights asked for by commit are the same encoder (and the same cache entry).
    assert encode_texts.encoder_identity("org/model@abc123", lambda n, r: "zzz")[0] == identity


def test_an_unresolved_hub_name_is_keyed_by_name_and_the_log_says_to_pin_it(tmp_path):
    from spot_runner.embedding_cache import Encoder

    identity, note = encode_texts.encoder_identity("org/model", lambda name, rev: None)
    assert identity == "hub:org/model@(default branch)"
    assert "the key uses the name only" in note and "Pinning @revision is recommended" in note
    said = []
    Encoder("org/model", tmp_path, None, say=said.append, commit_of=lambda n, r: None)
    assert any("the key uses the name only" in line for line in said)


def test_the_commit_is_read_from_the_hugging_face_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    repo = tmp_path / "models--org--model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    (repo / "snapshots" / "0123abcd" / "modules.json").write_text("[]")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert encode_texts.cached_hub_commit("org/model", None) == "0123abcd"
    assert encode_texts.cached_hub_commit("org/absent", None) is None


def test_fails_when_encoder_json_is_unreadable_before_training(trained_on_encoded, tmp_path):
    from conftest import run_trainer

    vectors, _ = trained_on_encoded
    broken = tmp_path / "broken"
    shutil.copytree(vectors, broken)
    (broken / encode_texts.ENCODER_FILE).write_text("{not json")
    done = run_trainer("--data", str(broken), "--out", str(tmp_path / "out"), *TRAIN_SMALL)
    assert done.returncode == 2, done.stderr[-2000:]
    assert str(broken / "encoder.json") in done.stderr and "unreadable" in done.stderr
    assert "encode the texts again" in done.stderr and "Traceback" not in done.stderr
    assert "fold 1" not in done.stdout  # refused before any training


def test_an_unpinned_model_encoder_is_not_refused_for_a_resolved_commit_of_the_same_name(tmp_path, capsys):
    from two_tower.encode import check_encoder
    from two_tower.errors import UserError

    data = tmp_path / "vectors"
    data.mkdir()
    unpinned = {"formatVersion": 1, "encoder": {"name": "org/m", "identity": "hub:org/m@(default branch)"}}

    def write(identity: str) -> None:
        (data / "encoder.json").write_text(json.dumps({"version": 1, "name": "n", "identity": identity}))

    write("hub:org/m@abc123")
    check_encoder(unpinned, tmp_path / "model", data)
    assert "was not pinned to a revision" in capsys.readouterr().err
    write("hub:org/other@abc123")
    with pytest.raises(UserError) as e:
        check_encoder(unpinned, tmp_path / "model", data)
    assert "encode the texts with the model's encoder" in e.value.message()
