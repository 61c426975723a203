"""Training dynamics, read from the run's per-epoch records (metrics.jsonl): overfitting, underfitting,
divergence, a learning rate too high or too low, a plateau, a run that had not converged, a schedule
that decays too fast, and full-batch gradient descent on data large enough for mini-batches."""

from __future__ import annotations

import math

import numpy as np

from honed.diagnosis.checks import check
from honed.diagnosis.evidence import RunEvidence
from honed.diagnosis.finding import Finding, change
from honed.evaluation.metrics import lower_is_better

OVERFIT_RISE = 0.05  # validation loss this far above its lowest, while training loss keeps falling
STILL_FALLING = 0.005  # a last-epoch improvement above this (relative) means the run was still learning
TOO_LOW_SPEEDUP = 10  # the range test's rate at least this many times the rate used


def relative_drop(before: float, after: float) -> float:
    return (before - after) / abs(before) if before else 0.0


def regularize(ev: RunEvidence) -> list[str]:
    """Stronger regularization, in the terms the recipe already uses."""
    adapter = ev.recipe.model.adapter
    if adapter is not None:  # only the adapter trains: its dropout and its rank are what regularize it
        out = [change(**{"model.adapter.dropout": round(min(0.5, adapter.dropout + 0.1), 2)})] \
            if adapter.dropout < 0.5 else []
        return out + ([change(**{"model.adapter.r": adapter.r // 2})] if adapter.r >= 8 else [])
    reg, out = ev.recipe.regularization, []
    if reg.c is not None:
        out.append(change(**{"regularization.c": reg.c / 10}))
    else:
        out.append(change(**{"regularization.l2": max(1e-4, reg.l2 * 10)}))
    if ev.recipe.model.name in ("mlp", "bag", "cnn", "resnet", "rnn") and ev.recipe.model.dropout < 0.5:
        out.append(change(**{"model.dropout": round(min(0.5, ev.recipe.model.dropout + 0.2), 2)}))
    return out


def loss_still_falling_steadily(train: list[float]) -> bool:
    """Every one of the last epochs lowered the loss, by steps that are not shrinking away: a rate too low,
    not a model that has learned what it can."""
    if len(train) < 4:
        return False
    steps = -np.diff(train[-4:])
    return bool(np.all(steps > 0) and steps[-1] >= 0.5 * steps[0])


@check("overfitting")
def overfitting(ev: RunEvidence) -> list[Finding]:
    validated = [r for r in ev.history if r.get("val_loss") is not None and r.get("train_loss") is not None
                 and "epoch" in r]  # epochs left unvalidated (train.val_every) have no val_loss
    val, train = [float(r["val_loss"]) for r in validated], [float(r["train_loss"]) for r in validated]
    epochs = [int(r["epoch"]) for r in validated]
    if len(val) < 4 or not ev.finite(val) or blown_up(ev):
        return []
    best = int(np.argmin(val))
    rise = (val[-1] - val[best]) / abs(val[best]) if val[best] else 0.0
    fell = relative_drop(train[best], train[-1])
    if len(val) - 1 - best < 2 or rise < OVERFIT_RISE or fell <= 0:
        return []
    es = ev.recipe.train.early_stopping
    advice = [] if es else [change(**{"train.early_stopping.patience": 2})]
    advice += regularize(ev)
    caught = " (early stopping restored that epoch's weights)" if es and es.restore_best else ""
    return [Finding("overfitting", "problem" if rise >= 2 * OVERFIT_RISE and not caught else "warning",
                    f"validation loss rose {rise:.1%} from epoch {epochs[best]} (its lowest, {val[best]:.4g}) to "
                    f"epoch {epochs[-1]} ({val[-1]:.4g}) while training loss fell {fell:.1%} to {train[-1]:.4g}"
                    f"{caught}", advice, strength=rise)]


def constant_predictor_loss(ev: RunEvidence) -> tuple[float, str] | None:
    """The training loss of a model that ignores its input: the class shares' entropy (log loss of
    predicting them), or the target's variance (mean squared error of predicting its mean)."""
    data, loss = ev.summary.get("data") or {}, ev.recipe.loss
    if ev.task in ("binary", "multiclass") and (data.get("class_counts") or {}).get("train"):
        if loss.label_smoothing:
            return None
        counts = np.asarray(data["class_counts"]["train"], dtype=float)
        shares = counts[counts > 0] / counts.sum()
        return float(-(shares * np.log(shares)).sum()), "predicting the class shares alone"
    if ev.task == "regression" and loss.name in ("auto", "mse"):
        if getattr(ev.recipe.data, "standardize_target", False):  # text sources read none
            return 1.0, "predicting the mean alone"
        std = ((data.get("target") or {}).get("train") or {}).get("std")
        return (float(std) ** 2, "predicting the mean alone") if std else None
    return None


def bigger_model(ev: RunEvidence) -> list[str]:
    m = ev.recipe.model
    if m.name in ("linear", "logistic"):
        return [change(**{"model.name": "mlp", "model.hidden": [64, 64]})] if ev.recipe.data.source not in (
            "text_files", "imdb") else [change(**{"model.name": "bag", "model.hidden": [64]})]
    if m.name in ("mlp", "bag"):
        widest = max(m.hidden, default=0)
        return [change(**{"model.hidden": [max(64, 4 * widest)] * max(1, len(m.hidden))})]
    if m.name == "rnn":
        return [change(**{"model.hidden_size": 2 * m.hidden_size})]
    if m.name in ("cnn", "resnet"):
        return [change(**{"model.channels": [2 * c for c in m.channels]})]
    return []


@check("underfitting")
def underfitting(ev: RunEvidence) -> list[Finding]:
    train = ev.series("train_loss")
    baseline = constant_predictor_loss(ev)
    if not train or baseline is None or not ev.finite(train) or baseline[0] <= 0 or blown_up(ev):
        return []
    share = train[-1] / baseline[0]
    m, classes = ev.recipe.model, len(ev.summary.get("labels") or [])
    narrow = ""
    if m.name in ("mlp", "bag") and m.hidden and classes > 1 and min(m.hidden) < classes:
        narrow = f"; a hidden layer of {min(m.hidden)} unit{'s' if min(m.hidden) > 1 else ''} for {classes} classes"
    # a loss still falling steadily through a model with no bottleneck points at the rate (lr_too_low)
    if share < 0.6 or (loss_still_falling_steadily(train) and not narrow):
        return []
    advice = bigger_model(ev)
    reg = ev.recipe.regularization
    if reg.l2 > 0 or reg.l1 > 0:
        advice.append(change(**{"regularization.l2": reg.l2 / 10, "regularization.l1": reg.l1 / 10}))
    advice.append(change(**{"train.epochs": 2 * ev.recipe.train.epochs}))
    return [Finding("underfitting", "problem" if share >= 0.85 else "warning",
                    f"training loss {train[-1]:.4g} is {share:.0%} of {baseline[0]:.4g}, what {baseline[1]} "
                    f"scores{narrow}", advice, strength=share)]


def blown_up(ev: RunEvidence) -> str:
    """Why the run counts as diverged ('' if it did not): a non-finite loss, or a finite one that ended ten
    times above what a constant prediction scores."""
    train = ev.series("train_loss")
    if ev.failure:
        f = ev.failure
        return f"the loss became {f.get('value', 'nan')} at epoch {f.get('epoch')}, step {f.get('step')}"
    bad = next((i for i, v in enumerate(train) if not math.isfinite(v)), None)
    if bad is not None:
        return f"the loss became {train[bad]} at epoch {ev.epochs[bad]}"
    baseline = constant_predictor_loss(ev)
    if train and baseline and baseline[0] > 0 and train[-1] > 10 * baseline[0]:
        return (f"training loss ended at {train[-1]:.4g}, {train[-1] / baseline[0]:,.0f}x the {baseline[0]:.4g} that "
                f"{baseline[1]} scores")
    return ""


@check("divergence")
def divergence(ev: RunEvidence) -> list[Finding]:
    reason = blown_up(ev)
    if not reason:
        return []
    norms = [n for n in ev.series("grad_norm") if math.isfinite(n)]
    before = ""
    if norms:
        before = (f"; the gradient norm at the end of the last recorded epoch was {norms[-1]:.3g} (median "
                  f"{np.median(norms):.3g} over the run)")
    lr = ev.recipe.optimizer.lr
    advice = [change(**{"optimizer.lr": lr / 100}), change(**{"optimizer.lr": lr / 10, "train.clip_grad_norm": 1.0})]
    return [Finding("divergence", "problem", reason + before, advice, strength=10.0)]


@check("lr_too_high")
def lr_too_high(ev: RunEvidence) -> list[Finding]:
    train, norms = ev.series("train_loss"), ev.series("grad_norm")
    if len(train) < 5 or not ev.finite(train) or ev.recipe.optimizer.name == "lbfgs" or blown_up(ev):
        return []
    rises = int(np.sum(np.diff(train) > 0.01 * np.abs(np.asarray(train[:-1]))))
    share = rises / (len(train) - 1)
    lowest = min(train)
    back_up = (train[-1] - lowest) / abs(lowest) if lowest else 0.0
    spikes = max(norms) / max(np.median(norms), 1e-12) if len(norms) >= 5 and ev.finite(norms) else 0.0
    reasons = []
    if share >= 0.3:
        reasons.append(f"training loss rose in {rises} of {len(train) - 1} epochs")
    if back_up >= 0.2:
        reasons.append(f"it ended {back_up:.0%} above its lowest ({lowest:.4g})")
    if spikes >= 10:
        reasons.append(f"the gradient norm peaked at {spikes:.0f}x its median")
    if len(reasons) < 2 and not (share >= 0.4 and back_up >= 0.1):
        return []
    lr = ev.recipe.optimizer.lr
    advice = [change(**{"optimizer.lr": lr / 3}), change(**{"schedule.warmup_epochs": 1.0}),
              change(**{"train.clip_grad_norm": 1.0})]
    return [Finding("lr_too_high", "problem", "; ".join(reasons) + f" at optimizer.lr = {lr:g}", advice,
                    strength=share + back_up)]


SPIKES_FOR_PROBLEM = 3  # this many spikes (or one that left the loss higher at the end) make it a problem


@check("loss_spikes")
def loss_spikes(ev: RunEvidence) -> list[Finding]:
    """Steps whose loss jumped far above the steps just before (training/hooks.LossSpikes): a rate too high for
    some batches, rare long or odd examples, or too little warmup — seen per step, where epochs average it away."""
    spikes = ev.summary.get("loss_spikes") or {}
    count, worst = int(spikes.get("count") or 0), [s for s in spikes.get("steps") or [] if isinstance(s, dict)]
    if count == 0 or not worst or blown_up(ev):
        return []
    top = worst[0]
    train = ev.series("train_loss")
    ended_higher = len(train) >= 2 and train[-1] > min(train) * 1.1
    lr, spec = ev.recipe.optimizer.lr, ev.recipe.train
    advice = [change(**{"optimizer.lr": lr / 2})]
    if not spec.clip_grad_norm:
        advice.insert(0, change(**{"train.clip_grad_norm": 1.0}))
    if not ev.recipe.schedule.warmup_epochs:
        advice.append(change(**{"schedule.warmup_epochs": 0.1 if (ev.epochs or [0])[-1] <= 3 else 1.0}))
    severity = "problem" if count >= SPIKES_FOR_PROBLEM or ended_higher else "warning"
    return [Finding("loss_spikes", severity,
                    f"the training loss spiked at {count} of {spikes.get('checked', 0):,} steps checked (the worst: "
                    f"step {top['step']} of epoch {top['epoch']}, {top['loss']:.4g}, {top['ratio']:.1f}x the median "
                    f"{top['median_before']:.4g} of the steps before it)"
                    + (f"; training loss ended {train[-1] / min(train) - 1:.0%} above its lowest" if ended_higher
                       else ""), advice, strength=float(top["ratio"]))]


@check("lr_too_low", needs="probe")
def lr_too_low(ev: RunEvidence) -> list[Finding]:
    train = ev.series("train_loss")
    if len(train) < 3 or not ev.finite(train) or ev.recipe.optimizer.name == "lbfgs":
        return []
    falls = np.diff(train) < 0
    drop = relative_drop(train[0], train[-1])
    if falls.mean() < 0.8 or drop > 0.5 or not loss_still_falling_steadily(train):
        return []
    lr = ev.recipe.optimizer.lr
    evidence = f"training loss fell in {int(falls.sum())} of {len(falls)} epochs, but only {drop:.1%} in all"
    if not ev.can_probe:
        return [Finding("lr_too_low", "warning", evidence + f" at optimizer.lr = {lr:g}",
                        [change(**{"optimizer.lr": lr * 10})], strength=1 - drop)]
    sweep = ev.range_test
    if not sweep.suggestion or sweep.suggestion < TOO_LOW_SPEEDUP * lr:
        return []
    return [Finding("lr_too_low", "problem", evidence + f"; a range test suggests {sweep.suggestion:.3g}, "
                    f"{sweep.suggestion / lr:.0f}x the {lr:g} used", [change(**{"optimizer.lr": sweep.suggestion})],
                    strength=math.log10(sweep.suggestion / lr))]


def monitored(ev: RunEvidence) -> tuple[str, list[float], bool]:
    """(key, values, lower is better) of what the run watched: early stopping's monitor, else the validation
    loss, else the training loss."""
    es = ev.recipe.train.early_stopping
    key = es.monitor if es else ("val_loss" if ev.has_validation else "train_loss")
    lower = es.mode == "min" if es and es.mode != "auto" else lower_is_better(key)
    return key, ev.series(key), lower


@check("plateau")
def plateau(ev: RunEvidence) -> list[Finding]:
    key, values, lower = monitored(ev)
    if len(values) < 6 or not ev.finite(values):
        return []
    v = np.asarray(values) * (1 if lower else -1)
    best = int(np.argmin(v))
    flat_from = next(i for i in range(len(v)) if v[i] <= v[best] + 1e-3 * abs(v[best]))  # first near-best epoch
    stalled = len(v) - 1 - flat_from
    if stalled < max(3, int(0.4 * len(v))):
        return []
    if key == "val_loss" and (values[-1] - min(values)) / abs(min(values) or 1) >= OVERFIT_RISE:
        return []  # rising, not flat: overfitting says it
    advice = [] if ev.recipe.schedule.name == "plateau" else [change(**{"schedule.name": "plateau"})]
    advice.append(change(**{"train.early_stopping.patience": 3} if not ev.recipe.train.early_stopping else
                          {"optimizer.lr": ev.recipe.optimizer.lr / 3}))
    since = ev.epochs_of(key)[flat_from]
    return [Finding("plateau", "note", f"{key} has not improved by 0.1% since epoch {since} "
                    f"({stalled} of {len(v)} epochs)", advice, strength=stalled / len(v))]


@check("not_converged")
def not_converged(ev: RunEvidence) -> list[Finding]:
    key, values, lower = monitored(ev)
    stop = ev.summary.get("stop_reason", "finished all epochs")
    if len(values) < 3 or not ev.finite(values) or stop != "finished all epochs":
        return []
    v = np.asarray(values) * (1 if lower else -1)
    gains = -np.diff(v) / np.maximum(np.abs(v[:-1]), 1e-12)
    if not (gains[-1] >= STILL_FALLING and np.all(gains[-2:] > 0)):
        return []
    return [Finding("not_converged", "warning", f"{key} still improved by {gains[-1]:.1%} in the last epoch "
                    f"({values[-2]:.4g} → {values[-1]:.4g})", [change(**{"train.epochs": 2 * ev.recipe.train.epochs})],
                    strength=float(gains[-1]))]


@check("schedule_decays_too_fast")
def schedule_decays_too_fast(ev: RunEvidence) -> list[Finding]:
    lrs = ev.series("lr")
    key, values, lower = monitored(ev)  # validation where there is one: an epoch's mean training loss lags
    s = ev.recipe.schedule
    if s.name in ("constant", "plateau") or len(lrs) < 4 or len(values) < 4 or not ev.finite(values):
        return []
    fraction = lrs[-1] / max(lrs)
    last_gain = relative_drop(values[-2], values[-1]) * (1 if lower else -1)
    if fraction > 0.05 or last_gain < 0.01:
        return []
    if s.name == "exponential":
        alternative = change(**{"schedule.gamma": round(s.gamma ** 0.5, 4)})
    elif s.name == "step":
        alternative = change(**{"schedule.step_epochs": 2 * s.step_epochs})
    elif s.name == "cosine":
        alternative = change(**{"schedule.min_lr": ev.recipe.optimizer.lr / 10})
    elif s.name == "linear":
        alternative = change(**{"schedule.end_factor": 0.1})
    else:
        alternative = change(**{"schedule.name": "cosine"})
    return [Finding("schedule_decays_too_fast", "warning", f"the learning rate ended at {fraction:.1%} of its peak "
                    f"while {key} still improved {last_gain:.1%} in the last epoch",
                    [alternative, change(**{"train.epochs": 2 * ev.recipe.train.epochs})], strength=last_gain)]


@check("full_batch_on_large_data", needs="probe")
def full_batch_on_large_data(ev: RunEvidence) -> list[Finding]:
    rows = ev.train_rows
    if ev.recipe.optimizer.name != "gd" or rows < 2000:
        return []
    train, seconds = ev.series("train_loss"), ev.series("seconds")
    advice = [change(**{"optimizer.name": "adam", "optimizer.lr": 0.001, "train.batch_size": 64})]
    per_step = seconds[-1] / len(seconds) if seconds else float("nan")
    evidence = f"gd takes one step per pass over {rows:,} rows ({per_step:.3g} s each here)"
    if ev.can_probe and train and ev.finite(train) and seconds:
        from honed.diagnosis.probes import MINI_BATCH, minibatch_race

        race = minibatch_race(ev.recipe, ev.bundle, train[-1], seconds[-1])  # measured, from the same start
        if not race["reached"]:
            return []  # mini-batches did not get there in gd's own time: gd was the right call
        speedup = seconds[-1] / max(race["seconds"], 1e-9)
        if speedup < 3:
            return []
        evidence += (f"; Adam with batches of {MINI_BATCH} reaches gd's final training loss {train[-1]:.4g} in "
                     f"{race['epochs']} epoch{'s' if race['epochs'] > 1 else ''} ({race['seconds']:.2g} s), "
                     f"{speedup:.0f}x faster than gd's {len(train)} epochs ({seconds[-1]:.2g} s)")
        return [Finding("full_batch_on_large_data", "warning", evidence, advice, strength=min(speedup, 1e6))]
    return [Finding("full_batch_on_large_data", "note", evidence + f"; mini-batches of 64 make {rows // 64:,} steps "
                    "from the same pass", advice, strength=rows / 2000)]
