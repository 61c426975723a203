"""honed doctor: each finding on a small generated run made to show it, and not the unrelated ones; a healthy
run with no problem; --fix checked against validation; every advice line applied to its recipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

import honed
from honed.diagnosis import doctor
from honed.diagnosis.finding import overrides
from honed.diagnosis.fix import fix
from honed.recipe import load_recipe

UNRELATED = {"divergence", "train_test_leakage", "conflicting_labels", "leaking_feature", "class_imbalance",
             "lr_too_high"}
ADVICE: list[tuple[Path, str]] = []  # every advice line seen, applied to its run's recipe at the end


def names(run: Path, probes: bool = True) -> dict[str, str]:
    d = doctor(run, probes=probes)
    for f in d.findings:
        ADVICE.extend((run, a) for a in f.advice)
    return {f.name: f.severity for f in d.findings}


def table_csv(path: Path, n: int = 1000, noise: float = 0.2, leak: bool = False, seed: int = 0) -> Path:
    """Ten features, two of which set the label; a share `noise` of the labels flipped."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    y = np.where(rng.random(n) < noise, 1 - y, y)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(10)])
    if leak:
        frame["label_copy"] = y * 2.0 - 1.0  # known only once the label is
    frame["y"] = y
    frame.to_csv(path, index=False)
    return path


def table_recipe(path: Path, **train) -> dict:
    return {"name": "t", "data": {"source": "tabular", "path": str(path), "target": "y", "val_fraction": 0.5},
            "model": {"name": "mlp", "hidden": [64]}, "optimizer": {"lr": 0.01}, "metrics": ["accuracy"],
            "train": {"epochs": 12, "batch_size": 16, "checkpoint": None} | train}


@pytest.fixture
def overfit_run(tmp_path):
    spec = table_recipe(table_csv(tmp_path / "noisy.csv"))
    spec["model"]["hidden"] = [256, 256]
    spec["train"]["epochs"] = 30
    return honed.train(spec, out=tmp_path / "overfit").path


def test_overfitting_is_found_with_the_epoch_it_starts_and_fixed_by_early_stopping(overfit_run):
    found = names(overfit_run)
    assert found["overfitting"] == "problem"
    assert not UNRELATED & set(found)
    d = doctor(overfit_run, probes=False)
    first = d.findings[0]
    summary = [json.loads(line) for line in (overfit_run / "metrics.jsonl").read_text().splitlines()]
    best = min(summary, key=lambda r: r["val_loss"])
    assert first.name == "overfitting" and f"from epoch {best['epoch']} " in first.evidence
    result = fix(overfit_run, d, top=1)
    tried = result["tried"][0]
    assert tried["change"] == "--set train.early_stopping.patience=2" and tried["kept"]
    assert result["after"] > result["before"] + result["noise"]  # validation accuracy rose beyond its noise
    fixed = load_recipe(overfit_run / "doctor" / "fixed.yaml")
    assert fixed.train.early_stopping.patience == 2
    assert not (overfit_run / "doctor" / "fix-1" / "test_outputs.npz").exists()  # the test split stayed unread


def test_a_one_unit_model_underfits(tmp_path):
    run = honed.train({"name": "narrow", "data": {"source": "sklearn", "name": "digits"},
                       "model": {"name": "mlp", "hidden": [1]}, "optimizer": {"lr": 0.01},
                       "train": {"epochs": 8, "batch_size": 64, "checkpoint": None}}, out=tmp_path / "r").path
    found = names(run)
    assert "underfitting" in found and not UNRELATED & set(found) and "overfitting" not in found
    evidence = next(f for f in doctor(run, probes=False).findings if f.name == "underfitting").evidence
    assert "a hidden layer of 1 unit for 10 classes" in evidence


def test_a_huge_learning_rate_diverges_and_the_step_is_named(tmp_path):
    spec = {"name": "wild", "data": {"source": "sklearn", "name": "digits"}, "model": {"name": "mlp", "hidden": [64]},
            "optimizer": {"name": "sgd", "lr": 50}, "train": {"epochs": 5, "batch_size": 64, "checkpoint": None}}
    with pytest.raises(honed.UserError, match="loss became"):
        honed.train(spec, out=tmp_path / "r")
    failure = json.loads((tmp_path / "r" / "failure.json").read_text())
    found = names(tmp_path / "r")
    assert found["divergence"] == "problem"
    assert {"overfitting", "underfitting", "lr_too_high", "lr_too_low"}.isdisjoint(found)
    evidence = doctor(tmp_path / "r", probes=False).findings[0].evidence
    assert f"epoch {failure['epoch']}, step {failure['step']}" in evidence


def test_a_tiny_learning_rate_is_too_low_by_the_range_test(tmp_path):
    run = honed.train({"name": "slow", "data": {"source": "sklearn", "name": "digits"},
                       "model": {"name": "mlp", "hidden": [64]}, "optimizer": {"lr": 1e-6},
                       "train": {"epochs": 6, "batch_size": 64, "checkpoint": None}}, out=tmp_path / "r").path
    d = doctor(run)
    low = next(f for f in d.findings if f.name == "lr_too_low")
    assert low.severity == "problem"
    suggested = float(overrides(low.advice[0])[0].split("=")[1])
    assert suggested >= 1e-4  # at least a hundred times the rate used
    assert not UNRELATED & {f.name for f in d.findings} and "underfitting" not in {f.name for f in d.findings}


def text_files(tmp_path: Path, train_rows: list[tuple[str, str]], test_rows: list[tuple[str, str]]) -> dict:
    pd.DataFrame(train_rows, columns=["text", "label"]).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(test_rows, columns=["text", "label"]).to_csv(tmp_path / "test.csv", index=False)
    return {"source": "text_files", "train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")}


def reviews(n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    good, bad, filler = "great fine lovely superb".split(), "awful poor dull broken".split(), "the a it was and".split()
    rows = []
    for i in range(n):
        label = "pos" if rng.random() < 0.5 else "neg"
        words = list(rng.choice(good if label == "pos" else bad, 2)) + list(rng.choice(filler, 4)) + [f"w{seed}x{i}"]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def text_run(tmp_path: Path, data: dict) -> Path:
    return honed.train({"name": "txt", "data": data | {"val_fraction": 0.0}, "model": {"name": "bag"},
                        "optimizer": {"lr": 0.05}, "train": {"epochs": 4, "batch_size": 16, "checkpoint": None}},
                       out=tmp_path / "run").path


def test_test_rows_copied_from_training_are_leakage_with_examples(tmp_path):
    train = reviews(200, 0)
    test = reviews(60, 1) + train[:12]  # twelve of 72 test rows are training rows
    run = text_run(tmp_path, text_files(tmp_path, train, test))
    d = doctor(run)
    leak = next(f for f in d.findings if f.name == "train_test_leakage")
    assert leak.severity == "problem" and leak.evidence.startswith("12 of 72 test rows (16.7%)")
    assert repr(test[60][0]) in leak.evidence or any(repr(t[0]) in leak.evidence for t in train[:12])
    assert not {"conflicting_labels", "class_imbalance", "divergence"} & {f.name for f in d.findings}


def test_the_same_text_with_two_labels_conflicts(tmp_path):
    train = reviews(200, 0)
    train += [(text, "neg" if label == "pos" else "pos") for text, label in train[:10]]  # ten flipped copies
    run = text_run(tmp_path, text_files(tmp_path, train, reviews(40, 2)))
    found = names(run)
    assert found["conflicting_labels"] in ("problem", "warning")
    ev = next(f for f in doctor(run).findings if f.name == "conflicting_labels").evidence
    assert ev.startswith("10 inputs appear with different labels")
    assert "train_test_leakage" not in found


def test_a_column_that_copies_the_label_leaks(tmp_path):
    run = honed.train(table_recipe(table_csv(tmp_path / "leak.csv", leak=True)), out=tmp_path / "r").path
    found = names(run)
    assert found["leaking_feature"] == "problem"
    assert "label_copy" in next(f for f in doctor(run).findings if f.name == "leaking_feature").evidence
    clean = honed.train(table_recipe(table_csv(tmp_path / "clean.csv")), out=tmp_path / "c").path
    assert "leaking_feature" not in names(clean)


def test_a_dominant_class_gets_balanced_class_weights(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 4))
    y = np.where(rng.random(1000) < 0.08, "rare", "common")
    frame = pd.DataFrame(x, columns=list("abcd"))
    frame["y"] = y
    frame.to_csv(tmp_path / "skew.csv", index=False)
    spec = table_recipe(tmp_path / "skew.csv")
    spec["metrics"] = ["accuracy", "recall"]  # recall of the rare class (label 1 of common, rare)
    run = honed.train(spec, out=tmp_path / "r")
    imbalance = next(f for f in doctor(run.path, probes=False).findings if f.name == "class_imbalance")
    counts = run.summary["data"]["class_counts"]["train"]
    weights = [round(sum(counts) / (2 * c), 3) for c in counts]  # scikit-learn's "balanced"
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.repeat([0, 1], counts)
    np.testing.assert_allclose(weights, compute_class_weight("balanced", classes=np.array([0, 1]), y=labels), atol=1e-3)
    assert imbalance.advice[0] == f"--set loss.class_weights=[{weights[0]:.3g},{weights[1]:.3g}]"
    ADVICE.extend((run.path, a) for a in imbalance.advice)
    weighted = honed.train(load_recipe(spec, overrides(imbalance.advice[0])), out=tmp_path / "w").summary
    assert weighted["test"]["recall"] > run.summary["test"]["recall"]  # the rare class is no longer ignored


def test_a_large_negative_bias_kills_relus(tmp_path):
    spec = {"name": "relu", "data": {"source": "sklearn", "name": "digits"}, "model": {"name": "mlp", "hidden": [32]},
            "optimizer": {"lr": 0.01}, "train": {"epochs": 3, "batch_size": 64, "checkpoint": None}}
    run = honed.train(spec, out=tmp_path / "r").path
    assert "dead_relus" not in names(run)
    weights = load_file(str(run / "model.safetensors"))
    bias = next(k for k in weights if k.endswith("bias") and weights[k].numel() == 32)
    weights[bias] = torch.full_like(weights[bias], -100.0)  # every hidden unit below zero on every input
    save_file(weights, str(run / "model.safetensors"))
    dead = next(f for f in doctor(run).findings if f.name == "dead_relus")
    assert dead.severity == "problem" and dead.evidence.startswith("32 of 32 units")


def test_a_healthy_run_has_no_problem(tmp_path):
    run = honed.train({"name": "ok", "data": {"source": "sklearn", "name": "digits"},
                       "model": {"name": "logistic"}, "optimizer": {"lr": 0.01},
                       "train": {"epochs": 6, "batch_size": 32, "checkpoint": None}}, out=tmp_path / "r").path
    d = doctor(run)
    assert d.healthy and all(f.severity != "problem" for f in d.findings)
    done = subprocess.run([sys.executable, "-m", "honed", "doctor", str(run)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = (run / "report.html").read_text()  # the run's page, refreshed with the findings
    assert 'id="doctor"' in page and all(f.name in page for f in d.findings)
    saved = json.loads((run / "doctor.json").read_text())
    assert saved["healthy"] and [f["name"] for f in saved["findings"]] == [f.name for f in d.findings]
    assert "No problem" in (run / "doctor.md").read_text() or "No findings" in (run / "doctor.md").read_text()


def test_train_ends_with_the_doctor_s_line_on_a_problem(tmp_path):
    spec = table_recipe(table_csv(tmp_path / "noisy.csv"), epochs=30)
    spec["model"]["hidden"] = [256, 256]
    (tmp_path / "overfit.yaml").write_text(yaml.safe_dump(spec))
    done = subprocess.run([sys.executable, "-m", "honed", "train", str(tmp_path / "overfit.yaml"), "--quiet", "--out",
                           str(tmp_path / "r")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("doctor: overfitting: validation loss rose") and last.endswith(f"honed doctor {tmp_path / 'r'}")


def test_every_advice_line_is_a_valid_set_for_its_recipe():
    assert len(ADVICE) >= 15  # collected by the tests above (they run first, in file order)
    for run, line in ADVICE:
        recipe = load_recipe(run / "recipe.yaml", overrides(line))  # a UserError here is a bad advice line
        assert line.startswith("--set ") and recipe is not None


# --- the history-only rules, on records written by hand -------------------------------------------------

def evidence(history: list[dict], recipe: dict | None = None, summary: dict | None = None, profile=None):
    from honed.diagnosis import RunEvidence

    return RunEvidence(recipe=load_recipe(recipe or {}), summary=summary or {"task": "binary"}, history=history,
                       probes=False, profile=profile or {})


def found_in(ev) -> dict:
    from honed.diagnosis import diagnose

    return {f.name: f for f in diagnose(ev, ("history",)).findings}


def records(train: list[float], val: list[float] | None = None, **series) -> list[dict]:
    out = []
    for i, loss in enumerate(train):
        r = {"epoch": i + 1, "train_loss": loss, "seconds": float(i + 1)}
        if val is not None:
            r["val_loss"] = val[i]
        r |= {k: v[i] for k, v in series.items()}
        out.append(r)
    return out


def test_a_loss_that_jumps_around_means_the_rate_is_too_high():
    jumpy = records([0.7, 0.5, 0.9, 0.4, 1.1, 0.6, 1.3], grad_norm=[1, 1, 30, 1, 2, 1, 1])
    high = found_in(evidence(jumpy, {"optimizer": {"lr": 0.3}}))["lr_too_high"]
    assert "training loss rose in 3 of 6 epochs" in high.evidence and high.advice[0] == "--set optimizer.lr=0.1"
    assert "lr_too_high" not in found_in(evidence(records([0.7, 0.5, 0.4, 0.35, 0.33, 0.32, 0.31])))


def test_a_flat_monitored_value_is_a_plateau_and_a_rising_one_is_not():
    flat = records([0.5] * 3 + [0.3] * 7, val=[0.6, 0.5, 0.4] + [0.35] * 7)
    assert "since epoch 4" in found_in(evidence(flat))["plateau"].evidence
    assert "plateau" not in found_in(evidence(records([0.5] * 10, val=[0.4] * 3 + [0.5] * 7)))


def test_still_improving_at_the_last_epoch_is_not_converged():
    going = records([0.9, 0.8, 0.7, 0.6], val=[0.9, 0.8, 0.72, 0.65])
    f = found_in(evidence(going, {"train": {"epochs": 4}}, {"task": "binary", "stop_reason": "finished all epochs"}))
    assert f["not_converged"].advice == ["--set train.epochs=8"]
    stopped = {"task": "binary", "stop_reason": "early stopping"}
    assert "not_converged" not in found_in(evidence(going, {"train": {"epochs": 4}}, stopped))


def test_a_rate_at_zero_while_validation_still_improves_decays_too_fast():
    hist = records([0.9, 0.7, 0.6, 0.55, 0.5], val=[0.9, 0.75, 0.66, 0.6, 0.55], lr=[1e-2, 5e-3, 1e-3, 1e-4, 1e-5])
    f = found_in(evidence(hist, {"schedule": {"name": "exponential", "gamma": 0.1}, "train": {"epochs": 5}}))
    assert f["schedule_decays_too_fast"].advice == ["--set schedule.gamma=0.316", "--set train.epochs=10"]
    constant = evidence(hist, {"train": {"epochs": 5}})
    assert "schedule_decays_too_fast" not in found_in(constant)


def test_weights_that_keep_growing_are_named():
    hist = records([0.5, 0.4, 0.35, 0.3, 0.28, 0.27], weight_norm=[1.0, 1.6, 2.3, 3.0, 3.9, 5.0])
    assert "grew from 1 to 5" in found_in(evidence(hist))["weights_growing"].evidence
    settled = records([0.5, 0.4, 0.35, 0.3, 0.28, 0.27], weight_norm=[1.0, 1.5, 1.7, 1.75, 1.76, 1.76])
    assert "weights_growing" not in found_in(evidence(settled))


def test_full_batch_descent_on_many_rows_is_measured_against_one_mini_batch_epoch(tmp_path):
    run = honed.train({"name": "gd", "data": {"source": "synthetic_regression", "n": 6000, "features": 5,
                                              "standardize_target": True},
                       "model": {"name": "linear"}, "optimizer": {"name": "gd", "lr": 0.002},
                       "train": {"epochs": 60, "checkpoint": None}}, out=tmp_path / "r").path
    f = {x.name: x for x in doctor(run).findings}["full_batch_on_large_data"]
    assert "Adam with batches of 64 reaches gd's final training loss" in f.evidence and "x faster than gd's 60" in f.evidence
    assert f.advice == ["--set optimizer.name=adam --set optimizer.lr=0.001 --set train.batch_size=64"]
    ADVICE.append((run, f.advice[0]))
    assert "full_batch_on_large_data" not in found_in(evidence(records([0.9, 0.8]), {"optimizer": {"name": "adam"}},
                                                               {"task": "regression", "sizes": {"train": 50_000}}))


def test_the_profile_names_cut_empty_and_unknown_texts_and_constant_features():
    profile = {"texts_measured": 2000, "words_median": 300, "words_p90": 900, "words_max": 3000, "max_len": 500,
               "truncated_share": 0.35, "empty_share": 0.02, "out_of_vocabulary_share": 0.12, "vocabulary_size": 10000}
    f = found_in(evidence(records([0.5, 0.4]), profile=profile))
    assert f["texts_cut"].advice == ["--set data.max_len=1000"]  # twice the cut, above the 90th percentile
    assert f["out_of_vocabulary"].advice == ["--set data.num_words=40000"]
    assert "2.0% of the training texts have no word" in f["empty_texts"].evidence
    table = {"features": [{"name": "a"}, {"name": "b"}, {"name": "c"}], "constant": ["b"]}
    recipe = {"data": {"source": "tabular", "path": "x.csv", "target": "y"}}
    assert found_in(evidence(records([0.5]), recipe, profile=table))["constant_features"].advice == [
        "--set data.columns=[a,c]"]


def test_mostly_missing_and_id_like_columns_are_named_with_the_line_that_drops_them():
    columns = [{"name": "age", "kind": "numeric", "missing_share": 0.0, "distinct": 70, "integer": True},
               {"name": "fax", "kind": "category", "missing_share": 0.81, "distinct": 12},
               {"name": "customer", "kind": "numeric", "missing_share": 0.0, "distinct": 980, "integer": True},
               {"name": "email", "kind": "category", "missing_share": 0.5, "distinct": 495},
               {"name": "income", "kind": "numeric", "missing_share": 0.0, "distinct": 990, "integer": False},
               {"name": "row", "kind": "drop", "missing_share": None, "distinct": None}]
    recipe = {"data": {"source": "tabular", "path": "x.csv", "target": "y"}}
    f = found_in(evidence(records([0.5]), recipe, {"task": "binary", "sizes": {"train": 1000}}, {"columns": columns}))
    assert "fax (81%)" in f["mostly_missing_columns"].evidence and "email (50%)" in f["mostly_missing_columns"].evidence
    assert f["mostly_missing_columns"].advice[0] == "--set data.column_types.fax=drop"
    # distinct on ~every row where present: a whole-number key and a text one; a continuous measure is no ID
    assert f["id_like_columns"].advice == ["--set data.column_types.customer=drop --set data.column_types.email=drop"]
    few = found_in(evidence(records([0.5]), recipe, {"task": "binary", "sizes": {"train": 100}}, {"columns": columns}))
    assert "id_like_columns" not in few  # 100 rows: distinct values are no evidence
    for line in f["id_like_columns"].advice + f["mostly_missing_columns"].advice:
        assert load_recipe(recipe, overrides(line)).data.column_types


def test_a_validation_split_of_a_hundred_rows_is_too_small_to_choose_with():
    summary = {"task": "binary", "sizes": {"val": 100}, "val": {"accuracy": 0.8, "ci95": {"accuracy": [0.71, 0.87]}}}
    small = found_in(evidence(records([0.5, 0.4]), {"data": {"val_fraction": 0.1}}, summary))["small_validation"]
    assert "±8.0 points" in small.evidence and small.advice == ["--set data.val_fraction=0.2"]


def test_the_end_of_training_line_needs_no_file_and_speaks_only_of_problems():
    from honed.diagnosis import end_of_training

    rising = records([0.6, 0.4, 0.2, 0.1, 0.05, 0.02], val=[0.6, 0.5, 0.55, 0.65, 0.8, 0.95])
    assert end_of_training(load_recipe({}), {"task": "binary"}, rising).name == "overfitting"
    assert end_of_training(load_recipe({}), {"task": "binary"}, records([0.5, 0.4], val=[0.5, 0.45])) is None


def test_an_overfitting_adapter_is_regularized_by_its_own_dropout_and_rank():
    rising = records([2.0, 1.2, 0.8, 0.5, 0.3, 0.2], val=[2.1, 1.6, 1.5, 1.7, 2.0, 2.4])
    chat = {"data": {"source": "chat", "pretrained": "lm"},
            "model": {"name": "causal_lm", "adapter": {"r": 16, "dropout": 0.05}}}
    found = found_in(evidence(rising, chat, {"task": "language_modeling"}))["overfitting"]
    assert "--set model.adapter.dropout=0.15" in found.advice and "--set model.adapter.r=8" in found.advice
    assert not any("regularization" in a or "model.dropout" in a for a in found.advice)  # the frozen model's keys


def test_a_step_far_above_the_steps_before_it_is_a_loss_spike_and_noise_is_not():
    from types import SimpleNamespace

    from honed.training.hooks import LossSpikes

    rng = np.random.default_rng(0)
    losses = list(2.0 + 0.05 * rng.standard_normal(200))
    losses[120], losses[170] = 6.0, 3.5  # 3.0x and 1.75x the median of the 50 steps before
    hook, trainer = LossSpikes(), SimpleNamespace(epoch=1, step=0, results={})
    for loss in losses:
        trainer.step += 1
        hook.on_step_end(trainer, float(loss))
    spikes = trainer.results["loss_spikes"]
    assert spikes["count"] == 2 and spikes["checked"] == 200 - 25  # compared once 25 steps are behind
    worst = spikes["steps"][0]
    window = np.array(losses[70:120])  # the 50 steps before step 121
    assert worst["step"] == 121 and worst["ratio"] == pytest.approx(6.0 / np.median(window), abs=1e-3)
    noisy = LossSpikes()  # small batches: the loss swings by half its size every step, and no step is a spike
    trainer = SimpleNamespace(epoch=1, step=0, results={})
    for loss in 1.0 + 0.5 * rng.standard_normal(300):
        trainer.step += 1
        noisy.on_step_end(trainer, float(abs(loss)))
    assert trainer.results["loss_spikes"]["count"] == 0
    flagged = found_in(evidence(records([2.3, 2.0, 1.9]), {"optimizer": {"lr": 0.001}},
                                {"task": "language_modeling", "loss_spikes": spikes}))["loss_spikes"]
    assert flagged.severity == "warning" and "spiked at 2 of 175 steps" in flagged.evidence
    assert flagged.advice == ["--set train.clip_grad_norm=1", "--set optimizer.lr=0.0005",
                              "--set schedule.warmup_epochs=0.1"]
    assert "loss_spikes" not in found_in(evidence(records([2.3, 2.0, 1.9]), None, {"task": "binary"}))
