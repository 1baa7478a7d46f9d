import torch

from two_tower.checkpoint import checkpoint_files, digest_file, load_latest, save_checkpoint, verify


def test_keeps_the_newest_two_and_loads_the_newest(tmp_path):
    for step in range(4):
        save_checkpoint(tmp_path, {"step": step, "weights": torch.ones(2) * step})
    assert [p.name for p in checkpoint_files(tmp_path)] == ["ckpt-00000003.pt", "ckpt-00000004.pt"]
    assert load_latest(tmp_path)["step"] == 3


def test_incomplete_files_are_ignored(tmp_path):
    save_checkpoint(tmp_path, {"step": 1})
    (tmp_path / "ckpt-00000002.pt.tmp").write_bytes(b"half a file")
    assert load_latest(tmp_path)["step"] == 1
    save_checkpoint(tmp_path, {"step": 2})
    assert not list(tmp_path.glob("*.tmp"))


def test_falls_back_to_the_older_checkpoint_when_the_newest_is_unreadable(tmp_path):
    save_checkpoint(tmp_path, {"step": 1})
    newest = save_checkpoint(tmp_path, {"step": 2})
    newest.write_bytes(b"corrupt")
    assert load_latest(tmp_path)["step"] == 1


def test_no_checkpoint_gives_none(tmp_path):
    assert load_latest(tmp_path / "missing") is None


def test_fails_when_a_checkpoint_is_damaged_in_place_it_is_skipped_and_the_older_one_loads(tmp_path, capsys):
    save_checkpoint(tmp_path, {"step": 1, "weights": torch.ones(64)})
    newest = save_checkpoint(tmp_path, {"step": 2, "weights": torch.ones(64) * 2})
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte, same size: torch.load might well accept it
    newest.write_bytes(bytes(data))

    assert load_latest(tmp_path)["step"] == 1
    assert f"{newest.name} is skipped: its bytes do not match its digest" in capsys.readouterr().out


def test_fails_when_a_checkpoint_has_no_digest_it_is_not_trusted(tmp_path, capsys):
    save_checkpoint(tmp_path, {"step": 1})
    newest = save_checkpoint(tmp_path, {"step": 2})
    digest_file(newest).unlink()

    assert load_latest(tmp_path)["step"] == 1
    assert "has no digest" in capsys.readouterr().out


def test_every_kept_checkpoint_has_its_digest_and_pruned_ones_take_theirs_along(tmp_path):
    for step in range(4):
        save_checkpoint(tmp_path, {"step": step})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "ckpt-00000003.pt",
        "ckpt-00000003.pt.sha256",
        "ckpt-00000004.pt",
        "ckpt-00000004.pt.sha256",
    ]
    assert all(verify(p) is None for p in checkpoint_files(tmp_path))
