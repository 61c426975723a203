"""Trackers fed during training (train.track): hooks on the loop, written by the main worker only.

    tensorboard   torch.utils.tensorboard's SummaryWriter into RUN_DIR/tensorboard/: the training loss and
                  learning rate per step (at most ~200 points an epoch), every epoch metric, and the recipe
                  as text; `tensorboard --logdir runs` shows every run at once. pip install 'honed[track]'.
    mlflow        an MLflow run in the experiment named after the recipe: the flattened recipe as parameters,
                  every epoch's metrics (one batch per epoch, never a call per step), the test and validation
                  scores, and the finished run directory's files as artifacts; to MLFLOW_TRACKING_URI, else
                  a SQLite store beside the run (RUN_DIR/../mlflow.db; `mlflow ui --backend-store-uri
                  sqlite:///runs/mlflow.db`).

A tracker that fails while training (a full disk) warns once and is dropped: it never stops a run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
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


class MLflow(Tracker):
    name = "mlflow"
    BATCH = 100  # MLflow's limit of parameters per log_batch call

    def __init__(self, run_dir: Path, recipe) -> None:
        super().__init__()
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UserError("train.track: mlflow needs its package: pip install 'honed[track]'") from None
        for noisy in ("alembic", "mlflow"):  # database migrations announce themselves at INFO
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # a tracking server that is down must cost seconds, not MLflow's default minutes of retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        self.run_dir, self.recipe = Path(run_dir).resolve(), recipe
        root = self.run_dir.parent
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"
        self.artifacts = (root / "mlartifacts").as_uri()
        self.client_class = MlflowClient
        self.client, self.run_id = None, None

    def on_fit_start(self, trainer) -> None:
        def start():
            from mlflow.entities import Param

            self.client = self.client_class(tracking_uri=self.uri)
            experiment = self.client.get_experiment_by_name(self.recipe.name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
                self.recipe.name, artifact_location=self.artifacts)
            run = self.client.create_run(experiment_id, run_name=self.run_dir.name,
                                         tags={"honed.run_dir": str(self.run_dir)})
            self.run_id = run.info.run_id
            params = [Param(k, str(v)[:6000]) for k, v in flattened(self.recipe.model_dump(mode="json")).items()]
            for i in range(0, len(params), self.BATCH):
                self.client.log_batch(self.run_id, params=params[i : i + self.BATCH])
        self.guarded(start)

    def on_epoch_end(self, trainer, record: dict) -> None:
        if self.run_id is None:
            return

        def write():
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            metrics = [Metric(k, float(v), now, int(record.get("epoch", trainer.epoch))) for k, v in record.items()
                       if isinstance(v, (int, float)) and k not in ("epoch", "step") and math.isfinite(v)]
            self.client.log_batch(self.run_id, metrics=metrics)
        self.guarded(write)

    def on_run_written(self, run_dir: Path, summary: dict) -> None:
        """After the run directory is complete: the final scores, the files as artifacts, the run closed."""
        if self.run_id is None:
            return

        def finish():
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            # test_*, and final_val_* (the saved model's validation score: the epochs' val_* are a history)
            scores = [Metric(f"{name}_{k}", float(v), now, 0) for split, name in (("test", "test"), ("val", "final_val"))
                      for k, v in (summary.get(split) or {}).items() if isinstance(v, (int, float))]
            if scores:
                self.client.log_batch(self.run_id, metrics=scores)
            self.client.log_artifacts(self.run_id, str(run_dir))
            self.client.set_terminated(self.run_id, "FINISHED")
        self.guarded(finish)


def flattened(tree: dict, prefix: str = "") -> dict[str, object]:
    """{'optimizer': {'lr': 0.1}} -> {'optimizer.lr': 0.1}: recipe keys as the recipe names them."""
    out: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out |= flattened(value, f"{name}.")
        else:
            out[name] = value
    return out


def run_written(hooks: list[Hook], run_dir: Path, summary: dict) -> None:
    """Tell the trackers the run directory is complete (the artifacts they keep are its files)."""
    for hook in hooks:
        if isinstance(hook, Tracker) and hasattr(hook, "on_run_written"):
            hook.on_run_written(run_dir, summary)


TRACKERS = {"tensorboard": TensorBoard, "mlflow": MLflow}


def trackers(names: list[str], run_dir: Path, recipe) -> list[Hook]:
    return [TRACKERS[name](run_dir, recipe) for name in dict.fromkeys(names)]
