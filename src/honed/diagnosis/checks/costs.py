"""Costs: where the run's time went, when one part dominates, and the recipe keys that cut it."""

from __future__ import annotations

from honed.diagnosis.checks import check
from honed.diagnosis.evidence import RunEvidence
from honed.diagnosis.finding import Finding, change

DOMINANT = 0.5  # a part taking at least this share of the run
WORTH_IT = 2.0  # seconds: below this nothing is worth changing


@check("time_split")
def time_split(ev: RunEvidence) -> list[Finding]:
    parts = ev.summary.get("timing") or {}
    total = sum(parts.values())
    if total < WORTH_IT or not parts:
        return []
    part, seconds = max(parts.items(), key=lambda kv: kv[1])
    share = seconds / total
    if share < DOMINANT or seconds < WORTH_IT:
        return []
    d, m, t = ev.recipe.data, ev.recipe.model, ev.recipe.train
    advice, hint = [], ""
    if part == "data":
        from honed.data.cache import CACHED_SOURCES

        if d.source not in CACHED_SOURCES:  # reading and encoding it again is the run's own cost
            return []
        if not d.cache:
            advice.append(change(**{"data.cache": True}))
        hint = "the preprocessing cache makes the next run of the same data settings read it back"
    elif part == "validation and hooks":
        epochs = len(ev.history)
        hint = (f"{epochs} epochs, each followed by scoring {ev.summary.get('sizes', {}).get('val', 0):,} validation "
                "rows and the hooks; early stopping ends a converged run sooner")
        if t.checkpoint and t.checkpoint.every_epochs:
            advice.append(change(**{"train.checkpoint.every_epochs": None}))
    elif part == "training":  # training taking most of the time is as it should be, unless a key cuts it
        if m.name == "bag" and not m.sparse and ev.recipe.optimizer.name in ("adam", "sgd", "adagrad"):
            advice.append(change(**{"model.sparse": True}))
        if m.name in ("rnn", "cnn", "transformer") and not t.bucketing:
            advice.append(change(**{"train.bucketing": True}))
    if not advice and not hint:
        return []
    return [Finding("time_split", "note", f"{part} took {seconds:.1f} s, {share:.0%} of the run's {total:.1f} s",
                    advice, hint=hint, strength=share)]
