"""Word tokens and hashed n-grams of one text: the `words` tokenizer's whole algorithm.

Standard library and numpy only, and no honed imports: `honed export` copies this file into
ONNX bundles (as bundle_words.py), so a client tokenizes exactly as training did without honed.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1 of every vocabulary
PRIME = 1_000_003
BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
WORD = re.compile(r"[\w']+")


def words_of(text: str, lowercase: bool) -> list[str]:
    """Word tokens: `[\\w']+` after removing HTML line breaks, outer apostrophes stripped."""
    text = BREAK.sub(" ", text)
    words = (w.strip("'") for w in WORD.findall(text.lower() if lowercase else text))
    return [w for w in words if w]


def text_ids(text: str, index: dict[str, int], lowercase: bool, max_len: int, keep_last: bool = False,
             ngrams: int = 1, buckets: int = 0, unique: bool = False) -> list[int]:
    """The ids of one text: its first (or last) max_len words, then their hashed n-grams; a sorted set if unique."""
    words = words_of(text, lowercase)
    words = words[-max_len:] if keep_last else words[:max_len]
    ids = [index.get(w, 1) for w in words]
    if ngrams > 1 and len(words) > 1:
        ids += ngram_ids(words, ids, ngrams, buckets, len(index))
    if unique:  # a set of tokens: each word or n-gram counts once, and rows get shorter
        ids = np.unique(ids).tolist()
    return ids


def ngram_ids(words: list[str], ids: list[int], n: int, buckets: int, offset: int) -> list[int]:
    """fastText-style hashed n-grams (2..n) of consecutive words, as ids offset + [0, buckets).

    Hashing runs on word ids (vectorized); out-of-vocabulary words get a stable crc32 of their
    text instead of the shared <unk> id, so their n-grams stay distinct. Word ids are small
    consecutive integers, so the rolling hash is scrambled (`mix64`) before taking it modulo
    `buckets`; without that, n-grams of frequent words would pile into a few buckets.
    """
    full = np.array([i if i != 1 else zlib.crc32(w.encode()) + 2**32 for w, i in zip(words, ids)], dtype=np.uint64)
    out = []
    h = full.copy()
    for k in range(1, n):
        if len(full) <= k:
            break
        h = h[:-1] * np.uint64(PRIME) + full[k:]  # wraps around modulo 2**64: a rolling hash
        out.append(mix64(h + np.uint64(k)) % np.uint64(buckets))  # + k: a bigram and a trigram never share a hash
    return (np.concatenate(out).astype(np.int64) + offset).tolist() if out else []


def mix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer: every input bit flips about half of the output bits."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
