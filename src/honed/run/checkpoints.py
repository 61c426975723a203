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
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from honed.digest import file_digest
from honed.errors import UserError
from honed.run.files import atomic_write, read_json, write_json
from honed.training.hooks import Hook

log = logging.getLogger("honed")
FOLDER = "checkpoints"
FORMAT = 1


class Checkpoints(Hook):
    """Saves the training state every `every_steps` optimizer steps and every `every_epochs` epochs."""

    def __init__(self, run_dir: Path, every_epochs: int | None, every_steps: int | None, keep: int,
                 write: bool = True) -> None:
        self.folder = Path(run_dir) / FOLDER
        self.every_epochs, self.every_steps, self.keep = every_epochs, every_steps, keep
        self.write = write  # only the main worker writes; with FSDP every worker still helps gather the state

    def on_step_end(self, trainer, loss) -> None:
        mid_epoch = trainer.epoch_step < trainer.batches.steps_per_epoch
        if self.every_steps and trainer.step % self.every_steps == 0 and mid_epoch:
            self.save(trainer)

    def on_epoch_end(self, trainer, record: dict) -> None:
        if self.every_epochs and trainer.epoch % self.every_epochs == 0 and not trainer.stop_reason:
            self.save(trainer)

    def save(self, trainer) -> Path | None:
        state = capture(trainer)
        if not self.write:
            return None
        name = f"step-{trainer.step:08d}"
        data = self.folder / f"{name}.pt"
        atomic_write(data, lambda tmp: torch.save(state, tmp))
        write_json(self.folder / f"{name}.json", {"format": FORMAT, "epoch": trainer.epoch, "step": trainer.step,
                                                 "epoch_step": trainer.epoch_step, "bytes": data.stat().st_size,
                                                 "sha256": sha256(data)})
        for old in manifests(self.folder)[self.keep :]:
            old.with_suffix(".pt").unlink(missing_ok=True)
            old.unlink(missing_ok=True)
        return data


class Resume(Hook):
    """Puts a loaded checkpoint back into the trainer when training starts (see load_latest)."""

    def __init__(self, state: dict) -> None:
        self.state = state

    def on_fit_start(self, trainer) -> None:
        restore(trainer, self.state)
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
            state = torch.load(manifest.with_suffix(".pt"), map_location="cpu", weights_only=True)
            log.info(f"resuming from {manifest.with_suffix('.pt')} (epoch {state['epoch']}, step {state['step']})")
            return state
        log.warning(f"checkpoint {manifest.with_suffix('.pt').name} is unusable ({problem}); trying an older one")
    raise UserError(f"--resume {run_dir}: every checkpoint in {folder} is damaged; start the run again")


def check(manifest: Path) -> str | None:
    """None when the checkpoint matches its manifest, else what is wrong."""
    data = manifest.with_suffix(".pt")
    try:
        info = read_json(manifest)
    except ValueError:
        return "its manifest is not valid JSON"
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


# --- capturing and restoring the state ------------------------------------------------------------


def capture(trainer) -> dict:
    """The whole training state as tensors and plain values (what torch.load(weights_only=True) accepts)."""
    model_state, optimizer_state = model_and_optimizer_state(trainer)
    elapsed = trainer.train_seconds + (time.perf_counter() - trainer.epoch_started if trainer.in_epoch else 0.0)
    return {
        "format": FORMAT,
        "epoch": trainer.epoch,
        "step": trainer.step,
        "epoch_step": trainer.epoch_step,
        "epoch_loss": float(trainer.epoch_loss),
        "train_seconds": elapsed,
        "samples_seen": trainer.samples_seen,
        "best_epoch": trainer.best_epoch,
        "history": trainer.history,
        "model": model_state,
        "optimizer": optimizer_state,
        "schedule": trainer.schedule.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "hooks": {type(h).__name__: h.state_dict() for h in trainer.hooks if h.state_dict()},
        "rng": rng_state(),
    }


def restore(trainer, state: dict) -> None:
    """Put a captured state back into a freshly built trainer."""
    load_model_and_optimizer(trainer, state["model"], state["optimizer"])
    trainer.schedule.scheduler.load_state_dict(state["schedule"])
    if state["scaler"]:
        trainer.scaler.load_state_dict(state["scaler"])
    for hook in trainer.hooks:
        saved = state["hooks"].get(type(hook).__name__)
        if saved is not None:
            hook.load_state_dict(saved)
    trainer.epoch, trainer.step, trainer.epoch_step = state["epoch"], state["step"], state["epoch_step"]
    trainer.resumed_loss = state["epoch_loss"]
    trainer.train_seconds, trainer.samples_seen = state["train_seconds"], state["samples_seen"]
    trainer.best_epoch, trainer.history = state["best_epoch"], list(state["history"])
    set_rng_state(state["rng"])


def model_and_optimizer_state(trainer) -> tuple[dict, dict]:
    if trainer.strategy != "fsdp":
        return trainer.model.state_dict(), trainer.optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    return get_state_dict(trainer.model, trainer.optimizer,
                          options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_model_and_optimizer(trainer, model_state: dict, optimizer_state: dict) -> None:
    if trainer.strategy != "fsdp":
        trainer.model.load_state_dict(model_state)
        trainer.optimizer.load_state_dict(optimizer_state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(trainer.model, trainer.optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state,
                   options=StateDictOptions(full_state_dict=True))


def rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
