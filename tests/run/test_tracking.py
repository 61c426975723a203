"""train.track: TensorBoard's own reader finds every epoch metric honed logged, and the per-step loss."""

import json

import pytest

import honed

pytest.importorskip("tensorboard")


def test_tensorboard_holds_the_epoch_metrics_of_metrics_jsonl_and_the_step_losses(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = honed.train({"data": {"source": "sklearn", "name": "breast_cancer"}, "model": {"name": "logistic"},
                       "optimizer": {"name": "adam", "lr": 0.01}, "schedule": {"name": "cosine"},
                       "train": {"epochs": 3, "batch_size": 64, "checkpoint": None, "track": ["tensorboard"]}},
                      out=tmp_path / "run")
    events = EventAccumulator(str(run.path / "tensorboard")).Reload()
    records = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
        logged = events.Scalars(f"epoch/{key}")
        assert [e.step for e in logged] == [r["epoch"] for r in records]
        assert [e.value for e in logged] == pytest.approx([r[key] for r in records], rel=1e-6)
    steps = events.Scalars("step/train_loss")
    assert len(steps) == records[-1]["step"] and steps[-1].step == records[-1]["step"]
    assert any(tag.startswith("recipe") for tag in events.Tags()["tensors"])  # the recipe as text


def test_an_unknown_tracker_is_refused_by_the_recipe(tmp_path):
    with pytest.raises(honed.UserError, match="train.track"):
        honed.load_recipe({"train": {"track": ["wandb"]}})


def test_mlflow_holds_the_recipe_the_epoch_metrics_the_scores_and_the_run_files(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = honed.train({"name": "tracked", "data": {"source": "sklearn", "name": "breast_cancer"},
                       "model": {"name": "logistic"}, "optimizer": {"name": "adam", "lr": 0.01},
                       "train": {"epochs": 3, "batch_size": 64, "checkpoint": None, "track": ["mlflow"]}},
                      out=tmp_path / "runs" / "first")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    [logged] = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    assert logged.info.status == "FINISHED" and logged.info.run_name == "first"
    assert logged.data.params["optimizer.lr"] == "0.01" and logged.data.params["train.epochs"] == "3"
    records = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    history = client.get_metric_history(logged.info.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], pytest.approx(r["val_accuracy"])) for r in records]
    assert logged.data.metrics["test_accuracy"] == pytest.approx(run.summary["test"]["accuracy"])
    files = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"summary.json", "model.safetensors", "recipe.yaml", "metrics.jsonl"} <= files


def test_a_tracker_that_fails_warns_once_and_training_goes_on(tmp_path, monkeypatch, caplog):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    run = honed.train({"data": {"source": "sklearn", "name": "breast_cancer"}, "model": {"name": "logistic"},
                       "train": {"epochs": 2, "checkpoint": None, "track": ["mlflow"]}}, out=tmp_path / "run")
    assert run.summary["epochs_run"] == 2 and (run.path / "model.safetensors").is_file()
    warnings = [r for r in caplog.records if "train.track: mlflow stopped working" in r.getMessage()]
    assert len(warnings) == 1
