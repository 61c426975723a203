"""Rules that span several recipe sections, one row each: which keys, when the rule is broken, and the line
that says so. A rule within one section stays with that section's type in schema.py; privacy's own rows
are in privacy.py.

A message is a format string over the recipe (`{r.model.name!r}`), so each row reads as the error it gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, NamedTuple

from honed.errors import did_you_mean
from honed.recipe.schema import BAG_MODELS, SPARSE_OPTIMIZERS

if TYPE_CHECKING:
    from honed.recipe.schema import Recipe


class Rule(NamedTuple):
    keys: str  # the keys the rule names, as its message starts
    broken: Callable[["Recipe"], bool]
    message: str  # formatted with r = the recipe


def _text(r: "Recipe", key: str, default: object) -> object:
    """A text setting, or its default when the source reads no texts (the section has no such key)."""
    return getattr(r.data, key, default)


def _uses_ngrams(r: "Recipe") -> bool:
    return _text(r, "ngrams", 1) == "auto" or _text(r, "ngrams", 1) > 1


def _not_bag(r: "Recipe") -> bool:
    return r.model.name not in BAG_MODELS


BAG_ONLY = ("works with model.name = bag only, or linear/logistic on text (got {r.model.name!r}): other models read "
            "tokens in order")
NOT_LBFGS = ("does not work with optimizer.name = lbfgs (full-batch steps with their own line search, in fp32); "
             "leave it at its default")
NOT_FSDP = ("does not work with train.strategy = fsdp (sharded parameters); use optimizer.weight_decay for "
            "regularization")

RULES: tuple[Rule, ...] = (
    Rule("data.ngrams", lambda r: _not_bag(r) and _uses_ngrams(r), BAG_ONLY),
    Rule("data.unique_tokens", lambda r: _not_bag(r) and bool(_text(r, "unique_tokens", False)), BAG_ONLY),
    Rule("data.char_ngrams", lambda r: _not_bag(r) and _text(r, "char_ngrams", None) is not None, BAG_ONLY),
    Rule("model.sparse", lambda r: _not_bag(r) and r.model.sparse, BAG_ONLY),
    Rule("model.pooling", lambda r: _not_bag(r) and r.model.pooling != "mean", BAG_ONLY),
    Rule("model.sparse", lambda r: r.optimizer.name == "lbfgs" and r.model.sparse, NOT_LBFGS),
    Rule("train.clip_grad_norm", lambda r: r.optimizer.name == "lbfgs" and r.train.clip_grad_norm is not None,
         NOT_LBFGS),
    Rule("train.accumulate", lambda r: r.optimizer.name == "lbfgs" and r.train.accumulate > 1, NOT_LBFGS),
    Rule("train.precision", lambda r: r.optimizer.name == "lbfgs" and r.train.precision != "fp32", NOT_LBFGS),
    Rule("schedule.name", lambda r: r.optimizer.name == "lbfgs" and r.schedule.name != "constant", NOT_LBFGS),
    Rule("model.name = transformer", lambda r: r.model.name == "transformer"
         and _text(r, "tokenizer", None) != "pretrained",
         "fine-tunes a pretrained encoder: set data.tokenizer = pretrained and data.pretrained (e.g. all-minilm-l6-v2)"),
    Rule("train.activation_checkpointing", lambda r: r.train.activation_checkpointing
         and r.model.name not in ("transformer", "causal_lm"),
         "works with model.name = transformer or causal_lm only (got {r.model.name!r}): it recomputes the pretrained "
         "model's layers"),
    Rule("model.name = causal_lm", lambda r: (r.model.name == "causal_lm") != (r.data.source == "chat"),
         "and data.source = chat go together (got model.name {r.model.name!r}, data.source {r.data.source!r}): a "
         "language model learns from chat or text examples, and those train nothing else"),
    Rule("model.bags", lambda r: r.data.source == "chat" and r.model.bags != 1,
         "does not work with data.source = chat (one language model trains); set model.bags=1"),
    Rule("train.privacy", lambda r: r.data.source == "chat" and r.train.privacy is not None,
         "does not work with model.name = causal_lm yet (a packed row holds several examples: per-example clipping "
         "would clip rows); set train.privacy=null"),
    Rule("model.sparse", lambda r: r.train.strategy == "fsdp" and r.model.sparse, NOT_FSDP),
    Rule("regularization.l1", lambda r: r.train.strategy == "fsdp" and bool(r.regularization.l1), NOT_FSDP),
    Rule("regularization.l2", lambda r: r.train.strategy == "fsdp" and bool(r.regularization.l2), NOT_FSDP),
    Rule("train.early_stopping", lambda r: r.train.early_stopping is not None
         and r.train.early_stopping.monitor.startswith("val_") and r.data.val_fraction == 0,
         "monitors {r.train.early_stopping.monitor}, but data.val_fraction = 0 leaves no validation rows: set "
         "data.val_fraction (e.g. 0.2) or monitor train_loss"),
    Rule("train.accumulate", lambda r: r.train.accumulate > 1 and r.optimizer.name == "gd",
         "has no effect with optimizer.name = gd: every batch of an epoch already adds up to one step"),
    Rule("model.numeric_embedding = piecewise", lambda r: r.model.numeric_embedding == "piecewise"
         and getattr(r.data, "scaling", None) != "quantile",
         "places its bins at the normal quantile transform's quantiles: set data.scaling = quantile "
         "(data.source = tabular)"),
    Rule("model.sparse", lambda r: r.model.sparse and r.optimizer.name not in SPARSE_OPTIMIZERS,
         f"needs optimizer.name in {', '.join(SPARSE_OPTIMIZERS)} " + "(got {r.optimizer.name!r}: it has no "
         "sparse-gradient version)"),
)


def first_broken(recipe: "Recipe") -> str | None:
    """The first broken rule as one line (privacy's refusals and unlogged monitored names included); None if none."""
    for rule in RULES:
        if rule.broken(recipe):
            return f"{rule.keys} {rule.message.format(r=recipe)}"
    if recipe.train.privacy is not None:
        from honed.recipe.privacy import leaks

        problem = leaks(recipe)
        if problem:
            return problem
    logged = recipe.logged_names()
    for key, name in recipe.monitored():
        if name not in logged:
            return f"{key} = {name!r} is not logged by this run{did_you_mean(name, logged)}; logged: {', '.join(logged)}"
    return None
