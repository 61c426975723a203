"""A rich progress bar over epochs and steps, showing loss, validation metric and throughput."""

from __future__ import annotations

import time

from honed.training.hooks import Hook


class ProgressBar(Hook):
    def __init__(self, console=None) -> None:
        self.console = console
        self.bar = None

    def on_fit_start(self, trainer) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        # stderr, so that stdout carries only results
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                            console=self.console or Console(stderr=True), transient=False)
        self.bar.start()
        epochs = trainer.recipe.train.epochs
        self.task = self.bar.add_task(f"epoch 1/{epochs}", total=trainer.batches.steps_per_epoch, info="")
        self.epochs = epochs
        self.started, self.seen, self.last = time.perf_counter(), 0, ""

    def on_step_end(self, trainer, loss) -> None:
        self.bar.update(self.task, advance=1, info=f"loss {loss:.4f} {self.last}")

    def on_epoch_end(self, trainer, record: dict) -> None:
        rate = trainer.samples_seen / max(trainer.train_seconds, 1e-9)
        val = [f"{k} {v:.4f}" for k, v in record.items() if k.startswith("val_") and isinstance(v, float)][:2]
        self.last = " ".join(val) + f" {rate:,.0f} samples/s"
        if trainer.epoch < self.epochs:
            self.bar.reset(self.task, total=trainer.batches.steps_per_epoch,
                           description=f"epoch {trainer.epoch + 1}/{self.epochs}")
        self.bar.update(self.task, info=f"loss {record['train_loss']:.4f} {self.last}")

    def on_fit_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.stop()
