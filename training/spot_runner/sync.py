"""The trainer's output mirrored into the store while it runs: checkpoints (the newest two) and train.log."""

from __future__ import annotations

from pathlib import Path

from contract import CHECKPOINT_TAG, CONFIG_FILES

from .runlog import log
from .storage import StorageError, Store

CHECKPOINTS = CONFIG_FILES["checkpoints"]
LOG = CONFIG_FILES["log"]
CHECKPOINT_TAGS = {CHECKPOINT_TAG["key"]: CHECKPOINT_TAG["value"]}
"""Every checkpoint upload carries the tag the bucket's lifecycle rule expires (names.json objectTags)."""


def is_complete_checkpoint(path: Path) -> bool:
    """The trainer gives a checkpoint its final name only when complete; temporaries start with a dot or
    end in .tmp/.part/.partial."""
    name = path.name
    return path.is_file() and not name.startswith(".") and not name.endswith((".tmp", ".part", ".partial"))


class CheckpointSync:
    """Mirrors OUT/checkpoints/ into <store>/checkpoints/: new files up, dropped files removed from the
    store once a newer one is there, so the store always holds a complete checkpoint."""

    def __init__(self, store: Store, local_dir: Path):
        self.store = store
        self.local_dir = local_dir
        self.uploaded: dict[str, tuple[int, int]] = {}
        self.uploads = 0

    def fetch(self) -> list[str]:
        """Download the checkpoints the store holds (at most the newest two) that are not here yet."""
        self.local_dir.mkdir(parents=True, exist_ok=True)
        names = []
        for obj in self.store.list(CHECKPOINTS):
            name = obj.key[len(CHECKPOINTS) :]
            if "/" in name or name.startswith("."):
                continue
            local = self.local_dir / name
            if not (local.is_file() and local.stat().st_size == obj.size):
                self.store.download(obj.key, local)
            st = local.stat()
            self.uploaded[name] = (st.st_size, st.st_mtime_ns)
            names.append(name)
        return names

    def sync(self) -> None:
        if not self.local_dir.is_dir():
            return
        present = {}
        found = []
        for path in self.local_dir.iterdir():
            try:  # the trainer may drop an old checkpoint at any moment
                if is_complete_checkpoint(path):
                    found.append((path.stat(), path))
            except FileNotFoundError:
                continue
        for st, path in sorted(found, key=lambda item: item[0].st_mtime_ns):
            present[path.name] = (st.st_size, st.st_mtime_ns)
            if self.uploaded.get(path.name) == present[path.name]:
                continue
            try:
                self.store.upload(path, CHECKPOINTS + path.name, tags=CHECKPOINT_TAGS)
            except StorageError as e:
                if path.exists():
                    log(f"warning: checkpoint {path.name} not uploaded: {e}")
                present.pop(path.name, None)
                continue
            self.uploaded[path.name] = present[path.name]
            self.uploads += 1
            log(f"checkpoint uploaded: {self.store.describe(CHECKPOINTS + path.name)}")
        if not present:
            return
        for name in [n for n in self.uploaded if n not in present]:
            try:
                self.store.delete(CHECKPOINTS + name)
                del self.uploaded[name]
            except StorageError as e:
                log(f"warning: old checkpoint {name} not removed: {e}")


def upload_log(store: Store, log_path: Path) -> None:
    """train.log into the store; a failure is only logged (the next tick or the run's end tries again)."""
    try:
        store.upload(log_path, LOG)
    except StorageError as e:
        log(f"warning: log not uploaded: {e}")
