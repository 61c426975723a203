"""Trackers fed during training (train.track): hooks on the loop, written by the main worker only.

    tensorboard   torch.utils.tensorboard's SummaryWriter into RUN_DIR/tensorboard/: the training loss and
                  learning rate per step (at most ~200 points an epoch), every epoch metric, and the recipe
                  as text; `tensorboard --logdir runs` shows every run at once. pip install 'honed[track]'.

A tracker that fails while training (a full disk) warns once and is dropped: it never stops a run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from honed.errors import UserError
from honed.training.hooks import Hook

log = logging.getLogger("honed")
POINTS_PER_EPOCH = 200


class Tracker(Hook):
    """Calls the tracker's own methods, turning a failure into one warning and silence afterwards."""

    name = "tracker"

    def __init__(self) -> None:
        self.broken = False

    def guarded(self, write, *args) -> None:
        if self.broken:
            return
        try:
            write(*args)
        except Exception as e:  # noqa: BLE001 - a tracker must never stop training
            self.broken = True
            log.warning(f"train.track: {self.name} stopped working ({type(e).__name__}: {str(e)[:120]}); "
                        "training goes on without it")

    def state_dict(self) -> dict:
        return {}


class TensorBoard(Tracker):
    name = "tensorboard"

    def __init__(self, run_dir: Path, recipe) -> None:
        super().__init__()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("train.track: tensorboard needs its package: pip install 'honed[track]'") from None
        self.writer_class, self.folder, self.recipe = SummaryWriter, Path(run_dir) / "tensorboard", recipe
        self.writer = None
        self.stride = 1

    def on_fit_start(self, trainer) -> None:
        def start():
            self.writer = self.writer_class(log_dir=str(self.folder))
            self.writer.add_text("recipe", "```\n" + json.dumps(self.recipe.model_dump(mode="json"), indent=2) + "\n```")
        self.guarded(start)
        self.stride = max(1, trainer.batches.steps_per_epoch // POINTS_PER_EPOCH)

    def on_step_end(self, trainer, loss) -> None:
        if self.writer is None or loss is None or trainer.step % self.stride:
            return
        lr = trainer.optimizer.param_groups[0]["lr"]

        def write():
            self.writer.add_scalar("step/train_loss", float(loss), trainer.step)
            self.writer.add_scalar("step/lr", lr, trainer.step)
        self.guarded(write)

    def on_epoch_end(self, trainer, record: dict) -> None:
        if self.writer is None:
            return

        def write():
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self.writer.add_scalar(f"epoch/{key}", value, record.get("epoch", trainer.epoch))
            self.writer.flush()
        self.guarded(write)

    def on_fit_end(self, trainer) -> None:
        if self.writer is not None:
            self.guarded(self.writer.close)


TRACKERS = {"tensorboard": TensorBoard}


def trackers(names: list[str], run_dir: Path, recipe) -> list[Hook]:
    return [TRACKERS[name](run_dir, recipe) for name in dict.fromkeys(names)]
