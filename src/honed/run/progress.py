"""A rich progress bar over the whole run: epoch, steps, loss, validation metrics, throughput, ETA."""

from __future__ import annotations

from honed.training.hooks import Hook


class ProgressBar(Hook):
    def __init__(self, console=None) -> None:
        self.console = console
        self.bar = None
        self.last = ""

    def on_fit_start(self, trainer) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        # stderr, so that stdout carries only results
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                            console=self.console or Console(stderr=True))
        self.epochs = trainer.recipe.train.epochs
        self.task = self.bar.add_task(f"epoch 1/{self.epochs}", total=self.epochs * trainer.batches.steps_per_epoch,
                                      info="", completed=trainer.step)
        self.bar.start()

    def on_step_end(self, trainer, loss) -> None:
        self.bar.update(self.task, advance=1, info=f"loss {loss:.4f} {self.last}")

    def on_epoch_end(self, trainer, record: dict) -> None:
        rate = trainer.samples_seen / max(trainer.train_seconds, 1e-9)
        val = [f"{k} {v:.4f}" for k, v in record.items() if k.startswith("val_") and isinstance(v, float)][:2]
        self.last = " ".join(val) + f" {rate:,.0f} samples/s"
        description = f"epoch {min(trainer.epoch + 1, self.epochs)}/{self.epochs}"
        self.bar.update(self.task, description=description, info=f"loss {record['train_loss']:.4f} {self.last}")

    def on_fit_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.stop()
