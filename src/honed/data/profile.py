"""What the data looks like: measured once while preprocessing, kept in preprocess.json and summary.json.

Text: words per text, the share of texts longer than data.max_len (cut), empty texts, and the share of
words outside the vocabulary; measured on a seeded sample of the training texts (at most SAMPLE), so
the cost stays flat however large the data. Tables: each feature's range, mean and spread on the
training rows, and which features are constant. Splits: rows and class counts (or the target's range).
The run report draws these; nothing here changes what the model sees.
"""

from __future__ import annotations

import numpy as np
import torch

from honed.data.words import TextSettings, words_of

SAMPLE = 2000  # training texts measured: the shares are within ~2 points at 95% confidence


def sample_rows(n: int, limit: int = SAMPLE, seed: int = 0) -> np.ndarray:
    """All n row numbers, or a seeded sorted sample of `limit` of them (the same rows every time)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def text_profile(texts: list[str], settings: TextSettings, vocabulary: dict[str, int] | None) -> dict:
    """Lengths in words, the share cut by max_len, empty texts; out-of-vocabulary words when there is a
    learned vocabulary (`None` for hashed words, BPE and pretrained tokenizers, which have no unknown word)."""
    rows = sample_rows(len(texts))
    words = [words_of(texts[i], settings.lowercase) for i in rows]
    lengths = np.array([len(w) for w in words], dtype=np.int64)
    if len(lengths) == 0:
        return {"texts_measured": 0}
    profile = {
        "texts_measured": int(len(lengths)),
        "words_median": float(np.median(lengths)),
        "words_p90": float(np.percentile(lengths, 90)),
        "words_max": int(lengths.max()),
        "max_len": settings.max_len,
        # sub-word tokenizers make more pieces than words: for them this share is a lower bound
        "truncated_share": float(np.mean(lengths > settings.max_len)),
        "empty_share": float(np.mean(lengths == 0)),
        "out_of_vocabulary_share": None,
    }
    if vocabulary is not None:
        total = int(lengths.sum())
        unknown = sum(1 for w in words for token in w if token not in vocabulary)
        profile["out_of_vocabulary_share"] = unknown / total if total else 0.0
        profile["vocabulary_size"] = len(vocabulary)
    return profile


def table_profile(x: np.ndarray, columns: list[str], unit: float = 1.0) -> dict:
    """Per feature, on the training rows: min, max, mean, standard deviation (each times `unit`: 1/255 for
    8-bit pixels); the constant ones named."""
    x = np.asarray(x)
    if x.ndim != 2 or len(x) == 0:
        return {}
    low, high = x.min(axis=0) * unit, x.max(axis=0) * unit
    mean, std = column_moments(x)
    mean, std = mean * unit, std * unit
    return {
        "features": [{"name": str(c), "min": float(a), "max": float(b), "mean": float(m), "std": float(s)}
                     for c, a, b, m, s in zip(columns, low, high, mean, std)],
        "constant": [str(c) for c, a, b in zip(columns, low, high) if a == b],
    }


CHUNK_VALUES = 2**23  # values converted to float64 at once (64 MB): CIFAR-10's 45,000 x 3,072 pixels whole are 1.1 GB


def column_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and standard deviation in float64, two passes over chunks of rows, so that no
    float64 copy of the whole matrix is made."""
    rows = max(1, CHUNK_VALUES // max(1, x.shape[1]))
    chunks = range(0, len(x), rows)
    mean = sum(x[i : i + rows].sum(axis=0, dtype=np.float64) for i in chunks) / len(x)
    square = sum(((x[i : i + rows].astype(np.float64) - mean) ** 2).sum(axis=0) for i in chunks)
    return mean, np.sqrt(square / len(x))


def split_profile(bundle, with_train: bool = True) -> dict:
    """For classes, how many of each per split (train, val, test); for regression the target's range in
    its own units. `with_train=False` leaves the training split out (a private run)."""
    splits = {name: s for name, s in (("train", bundle.train), ("val", bundle.val), ("test", bundle.test))
              if s is not None and (with_train or name != "train")}
    if bundle.task == "language_modeling":  # rows of packed examples and the tokens each split learns
        return {"learned_tokens": {name: int((s.x[:, 2] != -100).sum()) for name, s in splits.items()}}
    if bundle.task == "regression":
        unscale = bundle.preprocessor.unscale
        stats = {}
        for name, s in splits.items():
            y = unscale(s.y.float()).double()
            stats[name] = {"min": float(y.min()), "max": float(y.max()), "mean": float(y.mean()),
                           "std": float(y.std(unbiased=False))} if len(y) else {}
        return {"target": stats}
    k = bundle.output_dim if bundle.task == "multiclass" else 2
    return {"class_counts": {name: torch.bincount(s.y.long(), minlength=k).tolist() for name, s in splits.items()}}
