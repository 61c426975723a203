"""Search spaces: the recipe's `search:` section, or a default one for the model type.

A space maps dotted recipe keys to a `Domain` (loguniform, uniform, int or choice).
Optuna draws one value per key; `apply` turns the drawn values into a validated recipe.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from honed.errors import UserError
from honed.recipe import Recipe, variant
from honed.recipe.keys import get_dotted
from honed.recipe.schema import SPARSE_OPTIMIZERS, Domain

Space = dict[str, Domain]
log = logging.getLogger("honed")
ENCODER_KEY = "data.encoder_features"
ENCODER_SHARE = 1 / 2  # of a search's budget that computing sentence vectors may take: they are computed once and
                       # serve every trial, and a search of the words alone gains little (two-sentence reviews:
                       # -0.56 points against TF-IDF + LR with the encoder left out at a third)


def space_of(recipe: Recipe) -> tuple[Space, bool]:
    """(the space to search, whether the recipe declared it)."""
    if recipe.search:
        return dict(recipe.search), True
    return default_space(recipe), False


def default_space(recipe: Recipe) -> Space:
    """What is worth searching for this model type when the recipe declares nothing."""
    model, opt = recipe.model, recipe.optimizer
    space: Space = {"optimizer.lr": Domain(loguniform=(1e-4, 3e-1))}
    if opt.name != "gd":
        names = ["adam", "adamw", "sgd"] if not model.sparse else [n for n in ("adam", "adamw", "sgd")
                                                                        if n in SPARSE_OPTIMIZERS]
        space["optimizer.name"] = Domain(choice=names)
        own = recipe.train.batch_size  # a number, or auto (from the training rows)
        space["train.batch_size"] = Domain(choice=sorted({32, 64, 128, 256} | ({own} if own != "auto" else set()))
                                           + (["auto"] if own == "auto" else []))
    schedules = ["constant", "cosine"] + ([] if recipe.schedule.warmup_epochs else ["onecycle"])
    space["schedule.name"] = Domain(choice=schedules)
    space["optimizer.weight_decay"] = Domain(choice=[0.0, 1e-5, 1e-4, 1e-3, 1e-2])
    if model.name == "mlp":
        space["model.hidden"] = Domain(choice=[[32], [64], [128], [64, 64], [128, 64]])
    elif model.name == "bag":
        space["model.embedding_dim"] = Domain(choice=[16, 32, 64])
        space["model.hidden"] = Domain(choice=[[], [24], [64]])
    elif model.name == "cnn":
        space["model.channels"] = Domain(choice=[[16, 32], [32, 64], [32, 64, 128]])
    elif model.name == "resnet":
        space["model.channels"] = Domain(choice=[[24, 48, 96, 192], [32, 64, 128, 256], [64, 128, 256, 512]])
    elif model.name == "efficientnet":  # its widths are the pretrained ones; the size it reads images at is free
        space["model.input_size"] = Domain(choice=[48, 64, 96])
        space["model.freeze"] = Domain(choice=["none", 3, 6])  # blocks kept as ImageNet left them: faster steps
    elif model.name == "rnn":
        space["model.hidden_size"] = Domain(choice=[32, 64, 128])
        space["model.bidirectional"] = Domain(choice=[False, True])
    if model.name in ("mlp", "bag", "cnn", "resnet", "efficientnet", "rnn"):
        space["model.dropout"] = Domain(uniform=(0.0, 0.5))
    return space


def encode(value: Any) -> Any:
    """Optuna stores choices as plain scalars: lists and mappings travel as JSON text."""
    return json.dumps(value) if isinstance(value, (list, dict, tuple)) else value


def decode(domain: Domain, drawn: Any) -> Any:
    if domain.choice is not None:
        for value in domain.choice:
            if encode(value) == drawn:
                return value
    return drawn


def suggest(trial, space: Space) -> dict[str, Any]:
    """Draw one value per key from an Optuna trial; returns recipe values (lists decoded)."""
    params = {}
    for key, d in space.items():
        if d.choice is not None:
            drawn = trial.suggest_categorical(key, [encode(v) for v in d.choice])
        elif d.int is not None:
            drawn = trial.suggest_int(key, d.int[0], d.int[1], log=d.log, step=int(d.step or 1))
        else:
            low, high = d.loguniform or d.uniform
            drawn = trial.suggest_float(key, low, high, log=d.loguniform is not None, step=d.step)
        params[key] = decode(d, drawn)
    return params


def apply(recipe: Recipe, params: dict[str, Any]) -> Recipe:
    """The recipe with `params` (dotted keys) set, validated."""
    return variant(recipe, params)


def candidates(d: Domain) -> list[Any]:
    """The values that bound a domain: both ends of a range, or every choice."""
    if d.choice is not None:
        return list(d.choice)
    return list(d.int or d.loguniform or d.uniform)


def check_space(recipe: Recipe, space: Space) -> None:
    """Every end of every range and every choice must make a valid recipe on its own."""
    for key, d in space.items():
        for value in candidates(d):
            try:
                apply(recipe, {key: value})
            except UserError as e:
                raise UserError(f"search.{key}: the value {value!r} makes an invalid recipe: {e}") from None


def recipe_values(recipe: Recipe, space: Space) -> dict[str, Any] | None:
    """The recipe's own values of the searched keys, encoded for Optuna; None if one lies outside its domain."""
    raw = recipe.model_dump(mode="json")
    found = {}
    for key, d in space.items():
        node: Any = get_dotted(raw, key)
        if d.choice is not None:
            if node not in d.choice:
                return None
            found[key] = encode(node)
            continue
        low, high = d.int or d.loguniform or d.uniform
        if not isinstance(node, (int, float)) or not low <= node <= high:
            return None
        found[key] = node
    return found


def affordable(recipe: Recipe, space: Space, budget: float) -> Space:
    """The space without sentence encoders (data.encoder_features) that cannot pay within `budget`: the
    vectors of every training and test text would take more than half of it (estimated from the texts'
    length), or the encoder's packages are not installed. A rule that reads the data, never a score."""
    domain = space.get(ENCODER_KEY)
    if domain is None or domain.choice is None or all(v is None for v in domain.choice):
        return space
    from honed.data.build import load_raw
    from honed.data.embed import (INT8_SPEEDUP, LOAD_SECONDS, SAMPLE_TEXTS, estimated_seconds, is_int8, is_static,
                                  measured_seconds, unavailable)

    raw = load_raw(recipe.data)
    texts = list(raw.train.x) + (list(raw.test.x) if raw.test is not None else [])
    encoding = estimated_seconds(texts)
    kept, costs = [], []
    for name in domain.choice:
        reason = None if name is None else unavailable(name)
        if name is not None and reason is None:
            # measured on a sample unless even the optimistic guess is far over (then measuring would waste time);
            # a static encoder's lookups are always measured (or, not yet distilled, estimated without distilling)
            guess = LOAD_SECONDS + encoding / (INT8_SPEEDUP if is_int8(name) else 1.0)
            far_over = guess > 3 * ENCODER_SHARE * budget and not is_static(name)
            seconds = guess if far_over else measured_seconds(name, texts)
            if seconds > ENCODER_SHARE * budget:
                reason = (f"its vectors of {len(texts):,} texts would take about {seconds:.0f} s (measured on "
                          f"{min(len(texts), SAMPLE_TEXTS)} of them), over half of --budget {budget:g}")
        if reason:
            log.info(f"tune: {ENCODER_KEY} = {name} left out of the search: {reason}")
        else:
            kept.append(name)
            if name is not None:
                costs.append(f"{name}: about {seconds:.0f} s")
    if kept == list(domain.choice):
        log.info(f"tune: {ENCODER_KEY} searched (vectors computed once; {', '.join(costs)})")
        return space
    rest = {k: d for k, d in space.items() if k != ENCODER_KEY}
    return rest if len(kept) <= 1 else rest | {ENCODER_KEY: Domain(choice=kept)}
