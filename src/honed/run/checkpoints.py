"""Checkpoints: everything a stopped run needs to continue exactly where it was.

A checkpoint holds the model, optimizer, schedule and gradient-scaler states, the
random number generators, the step and epoch (the data order of an epoch is a
function of the seed and the epoch, so the step within the epoch is the data-order
position), the loss summed so far this epoch, the history and every hook's state
(early stopping, time to target, ...).

Files, in RUN_DIR/checkpoints/:
    step-00000120.pt    the state, written with torch.save and read back with
                        torch.load(weights_only=True): tensors and plain values only, no code
    step-00000120.json  its manifest: sha256, size, epoch and step (written after the .pt)
Both are written atomically (temp file + rename); the newest `keep` are kept. A
checkpoint whose file is missing, truncated or does not match its checksum is
reported and skipped in favour of the newest good one.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import torch

from honed.digest import file_digest
from honed.errors import UserError
from honed.files import atomic_write, read_json, write_json
from honed.training.hooks import Hook

log = logging.getLogger("honed")
FOLDER = "checkpoints"
FORMAT = 2  # 2: the trainer's own state_dict()


class Checkpoints(Hook):
    """Saves the training state once `every_minutes` have passed since the last save (checked after every
    step), and every `every_steps` optimizer steps and every `every_epochs` epochs when those are set.

    By time, a checkpoint costs what it saves: a run shorter than `every_minutes` writes none, and a
    long run loses at most that much work. Each save logs its size and how long it took.
    """

    def __init__(self, run_dir: Path, every_epochs: int | None, every_steps: int | None, keep: int,
                 write: bool = True, every_minutes: float | None = None) -> None:
        self.folder = Path(run_dir) / FOLDER
        self.every_epochs, self.every_steps, self.keep = every_epochs, every_steps, keep
        self.every_seconds = every_minutes * 60 if every_minutes else None
        self.write = write  # only the main worker writes; with FSDP every worker still helps gather the state
        self.last_save = time.perf_counter()

    def on_fit_start(self, trainer) -> None:
        self.last_save = time.perf_counter()

    def due(self) -> bool:
        return self.every_seconds is not None and time.perf_counter() - self.last_save >= self.every_seconds

    def on_step_end(self, trainer, loss) -> None:
        mid_epoch = trainer.epoch_step < trainer.batches.steps_per_epoch
        by_steps = self.every_steps and trainer.step % self.every_steps == 0
        if mid_epoch and (by_steps or self.due()):
            self.save(trainer)

    def on_epoch_end(self, trainer, record: dict) -> None:
        by_epochs = self.every_epochs and trainer.epoch % self.every_epochs == 0
        if not trainer.stop_reason and (by_epochs or self.due()):
            self.save(trainer)

    def save(self, trainer) -> Path | None:
        began = time.perf_counter()
        state = trainer.state_dict() | {"format": FORMAT}
        if not self.write:
            self.last_save = time.perf_counter()
            return None
        name = f"step-{trainer.step:08d}"
        data = self.folder / f"{name}.pt"
        atomic_write(data, lambda tmp: torch.save(state, tmp))
        size = data.stat().st_size
        write_json(self.folder / f"{name}.json", {"format": FORMAT, "epoch": trainer.epoch, "step": trainer.step,
                                                 "epoch_step": trainer.epoch_step, "bytes": size,
                                                 "sha256": sha256(data)})
        for old in manifests(self.folder)[self.keep :]:
            old.with_suffix(".pt").unlink(missing_ok=True)
            old.unlink(missing_ok=True)
        self.last_save = time.perf_counter()
        log.info(f"checkpoint {data.name}: {size / 1e6:.1f} MB in {self.last_save - began:.2f} s")
        return data


class Resume(Hook):
    """Puts a loaded checkpoint back into the trainer when training starts (see load_latest)."""

    def __init__(self, state: dict) -> None:
        self.state = state

    def on_fit_start(self, trainer) -> None:
        trainer.load_state_dict(self.state)
        self.state = {}  # the tensors are in the trainer now


def manifests(folder: Path) -> list[Path]:
    """Checkpoint manifests, newest first."""
    return sorted(folder.glob("step-*.json"), reverse=True) if folder.is_dir() else []


def sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def load_latest(run_dir: Path) -> dict:
    """The newest checkpoint that is intact; a broken one is reported and the one before it used."""
    folder = Path(run_dir) / FOLDER
    found = manifests(folder)
    if not found:
        raise UserError(f"--resume {run_dir}: no checkpoint in {folder} "
                        "(train.checkpoint was off, or the run stopped before its first one)")
    for manifest in found:
        problem = check(manifest)
        if problem is None:
            try:
                state = torch.load(manifest.with_suffix(".pt"), map_location="cpu", weights_only=True)
                where = f"epoch {state['epoch']}, step {state['step']}"
            except Exception as e:  # noqa: BLE001 - unreadable content that matched its manifest
                problem = f"unreadable: {type(e).__name__}"
            else:
                log.info(f"resuming from {manifest.with_suffix('.pt')} ({where})")
                return state
        log.warning(f"checkpoint {manifest.with_suffix('.pt').name} is unusable ({problem}); trying an older one")
    raise UserError(f"--resume {run_dir}: every checkpoint in {folder} is damaged; start the run again")


def check(manifest: Path) -> str | None:
    """None when the checkpoint matches its manifest, else what is wrong."""
    data = manifest.with_suffix(".pt")
    try:
        info = read_json(manifest)
    except (ValueError, OSError):
        return "its manifest is not valid JSON"
    if not isinstance(info, dict):
        return "its manifest is not a JSON object"
    if info.get("format") != FORMAT:
        return f"format {info.get('format')}, expected {FORMAT}"
    if not data.is_file():
        return "the file is missing"
    if data.stat().st_size != info.get("bytes"):
        return f"{data.stat().st_size} bytes, expected {info.get('bytes')}: truncated"
    if sha256(data) != info.get("sha256"):
        return "checksum mismatch"
    return None


def remove_all(run_dir: Path) -> None:
    shutil.rmtree(Path(run_dir) / FOLDER, ignore_errors=True)
