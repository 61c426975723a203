"""What `train.privacy` cannot sit beside, said before any data is read.

The guarantee of DP-SGD covers the weights with respect to the training rows. Anything else fitted on
those rows would leak them around it: a vocabulary of their most frequent words, BPE merges, idf
counts, standardization statistics, `auto` settings read from their lengths. Each is refused with the
setting that avoids it. So are training settings that would bypass per-example clipping (a loss
penalty's gradient, gradient accumulation, full-batch steps, sparse embedding updates).
"""

from __future__ import annotations

TEXT_SOURCES = ("text_files", "imdb")

# (recipe key, is it set?, why it leaks or breaks the guarantee, what to set instead)
CHECKS = (
    ("data.vocabulary = train", lambda r: r.data.source in TEXT_SOURCES and r.data.tokenizer == "words"
     and r.data.vocabulary == "train", "the vocabulary is the training texts' most frequent words",
     "data.vocabulary=hashed (or data.tokenizer=pretrained)"),
    ("data.tokenizer = bpe", lambda r: r.data.source in TEXT_SOURCES and r.data.tokenizer == "bpe",
     "its merges are learned from the training texts", "data.tokenizer=words with data.vocabulary=hashed"),
    ("data.ngrams = auto", lambda r: r.data.source in TEXT_SOURCES and r.data.ngrams == "auto",
     "the rule reads the training texts' lengths", "a number, e.g. data.ngrams=2"),
    ("data.char_ngrams = auto", lambda r: r.data.source in TEXT_SOURCES and r.data.char_ngrams == "auto",
     "the rule reads the training texts' lengths", "data.char_ngrams=null or e.g. [2, 5]"),
    ("model.pooling = tfidf", lambda r: r.model.pooling == "tfidf", "idf counts come from the training texts",
     "model.pooling=l2 (no idf) or mean"),
    ("data.standardize", lambda r: r.data.source not in TEXT_SOURCES and r.data.standardize,
     "the means and deviations are the training rows'", "data.standardize=false (scale with public constants)"),
    ("data.column_types", lambda r: r.data.source == "tabular" and not (
        r.data.columns and all(r.data.column_types.get(c) == "numeric" for c in r.data.columns)),
     "which columns are categories, their values, and which cells were missing are read from the training rows",
     "data.columns naming numeric columns only, with data.column_types.NAME=numeric for each"),
    ("model.numeric_embedding / model.ensemble", lambda r: r.model.numeric_embedding != "none" or r.model.ensemble > 1,
     "Opacus has no per-example gradients for their weights", "model.numeric_embedding=none and model.ensemble=1"),
    ("data.standardize_target", lambda r: getattr(r.data, "standardize_target", False),
     "the target's mean and deviation are the training rows'", "data.standardize_target=false"),
    ("regularization.l1/l2", lambda r: bool(r.regularization.l1 or r.regularization.l2),
     "a penalty's gradient is not clipped per example", "optimizer.weight_decay"),
    ("optimizer.name", lambda r: r.optimizer.name in ("gd", "lbfgs"),
     "DP-SGD steps on sampled mini-batches", "sgd, adam, adamw, rmsprop or adagrad"),
    ("model.sparse", lambda r: r.model.sparse, "noise touches every embedding row, so updates are dense",
     "model.sparse=false"),
    ("train.accumulate", lambda r: r.train.accumulate > 1, "each sampled batch is one private step",
     "train.accumulate=1 and a larger train.batch_size"),
    ("train.clip_grad_norm", lambda r: r.train.clip_grad_norm is not None,
     "train.privacy.max_grad_norm clips each example", "train.clip_grad_norm=null"),
    ("train.precision", lambda r: r.train.precision != "fp32", "per-example gradients are computed in fp32",
     "train.precision=fp32"),
    ("train.compile", lambda r: r.train.compile, "per-example gradient hooks do not compile", "train.compile=false"),
    ("train.strategy = fsdp", lambda r: r.train.strategy == "fsdp", "sharded per-example gradients are not supported",
     "train.strategy=auto"),
)


def leaks(recipe) -> str | None:
    """The first setting of `recipe` that train.privacy refuses, as one line; None when there is none."""
    for key, applies, why, instead in CHECKS:
        if applies(recipe):
            return f"{key} under train.privacy: {why}; set {instead}"
    return None
