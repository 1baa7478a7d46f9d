"""The child's output mirrored into the store while it runs: checkpoints (the trainer's newest two, or a
script's checkpoint directory) and train.log."""

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


SCRIPT_CHECKPOINTS = CHECKPOINTS + "script/"
"""A user script's checkpoint directory (env SPOT_SWEEP_CHECKPOINT_DIR) in the store: below checkpoints/, so
the lifecycle tag, a changed job's start-over and the trainer's own (flat) files keep apart."""


class CheckpointSync:
    """Mirrors a local checkpoint directory (OUT/checkpoints/) into <store>/``prefix`` (checkpoints/): new
    files up, dropped files removed from the store once a newer one is there, so the store always holds a
    complete checkpoint. ``nested``: files in subdirectories too, by their relative path (a user script's
    directory may hold a model folder); the trainer's are flat, and its fetch ignores anything nested (a
    script's, under checkpoints/script/)."""

    def __init__(self, store: Store, local_dir: Path, prefix: str = CHECKPOINTS, nested: bool = False):
        self.store = store
        self.local_dir = local_dir
        self.prefix = prefix
        self.nested = nested
        self.uploaded: dict[str, tuple[int, int]] = {}
        self.uploads = 0

    def fetch(self) -> list[str]:
        """Download the checkpoints the store holds (the trainer's: at most the newest two) not here yet."""
        self.local_dir.mkdir(parents=True, exist_ok=True)
        names = []
        for obj in self.store.list(self.prefix):
            name = obj.key[len(self.prefix) :]
            if (not self.nested and "/" in name) or any(part.startswith(".") for part in name.split("/")):
                continue
            local = self.local_dir / name
            if not (local.is_file() and local.stat().st_size == obj.size):
                self.store.download(obj.key, local)
            st = local.stat()
            self.uploaded[name] = (st.st_size, st.st_mtime_ns)
            names.append(name)
        return names

    def _files(self) -> list[Path]:
        if not self.nested:
            return list(self.local_dir.iterdir())
        # Hidden directories are a writer's temporaries, as hidden files are (is_complete_checkpoint).
        return [
            p
            for p in self.local_dir.rglob("*")
            if not any(part.startswith(".") for part in p.relative_to(self.local_dir).parts[:-1])
        ]

    def sync(self) -> None:
        if not self.local_dir.is_dir():
            return
        present = {}
        found = []
        for path in self._files():
            try:  # the writer may drop an old checkpoint at any moment
                if is_complete_checkpoint(path):
                    found.append((path.stat(), path))
            except FileNotFoundError:
                continue
        for st, path in sorted(found, key=lambda item: item[0].st_mtime_ns):
            name = path.relative_to(self.local_dir).as_posix()
            present[name] = (st.st_size, st.st_mtime_ns)
            if self.uploaded.get(name) == present[name]:
                continue
            try:
                self.store.upload(path, self.prefix + name, tags=CHECKPOINT_TAGS)
            except StorageError as e:
                if path.exists():
                    log(f"warning: checkpoint {name} not uploaded: {e}")
                present.pop(name, None)
                continue
            self.uploaded[name] = present[name]
            self.uploads += 1
            log(f"checkpoint uploaded: {self.store.describe(self.prefix + name)}")
        if not present:
            return
        for name in [n for n in self.uploaded if n not in present]:
            try:
                self.store.delete(self.prefix + name)
                del self.uploaded[name]
            except StorageError as e:
                log(f"warning: old checkpoint {name} not removed: {e}")


def upload_log(store: Store, log_path: Path) -> None:
    """train.log into the store; a failure is only logged (the next tick or the run's end tries again)."""
    try:
        store.upload(log_path, LOG)
    except StorageError as e:
        log(f"warning: log not uploaded: {e}")
