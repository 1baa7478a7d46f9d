import torch

from two_tower.checkpoint import checkpoint_files, load_latest, save_checkpoint


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
