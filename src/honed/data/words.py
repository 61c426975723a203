"""Word tokens and hashed n-grams of one text: the `words` tokenizer's whole algorithm.

Standard library and numpy only, and no honed imports: `honed export` copies this file into
ONNX bundles (as bundle_words.py), so a client tokenizes exactly as training did without honed.
"""

from __future__ import annotations

import itertools
import re
import zlib

import numpy as np

PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1 of every vocabulary
PRIME = 1_000_003
BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# A run of word characters and apostrophes, without the apostrophes at its ends ("'tis'" -> "tis",
# "it's" stays): the same tokens as `[\w']+` with outer apostrophes stripped, in one regex call.
WORD = re.compile(r"\w(?:[\w']*\w)?")


def words_of(text: str, lowercase: bool) -> list[str]:
    """Word tokens (see WORD) after removing HTML line breaks."""
    text = BREAK.sub(" ", text)
    return WORD.findall(text.lower() if lowercase else text)


def text_ids(text: str, index: dict[str, int], lowercase: bool, max_len: int, keep_last: bool = False,
             ngrams: int = 1, buckets: int = 0, unique: bool = False) -> list[int]:
    """The ids of one text: its first (or last) max_len words, then their hashed n-grams; a sorted set if unique."""
    values, _ = texts_ids([text], index, lowercase, max_len, keep_last, ngrams, buckets, unique)
    return values.tolist()


def texts_ids(texts: list[str], index: dict[str, int], lowercase: bool, max_len: int, keep_last: bool = False,
              ngrams: int = 1, buckets: int = 0, unique: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(ids of all texts back to back as int32, ids per text), as text_ids gives them one by one.

    Words are looked up one by one (a regex and a dict); everything after — n-gram hashing, the
    order within each text, the unique sets — runs on whole arrays at once: per-text numpy calls
    would cost more than the arithmetic.
    """
    words = []
    for text in texts:
        w = words_of(text, lowercase)
        words.append(w[-max_len:] if keep_last else w[:max_len])
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    flat = list(itertools.chain.from_iterable(words))
    ids = np.array(list(map(index.get, flat, itertools.repeat(1))), dtype=np.int64)
    row = np.repeat(np.arange(len(texts)), lengths)
    parts, part_rows = [ids], [row]
    if ngrams > 1:
        for k, hashed, valid in ngram_hashes(flat, ids, row, ngrams):
            parts.append((mix64(hashed + np.uint64(k)) % np.uint64(buckets)).astype(np.int64) + len(index))
            part_rows.append(row[: len(row) - k][valid])
    values, rows = np.concatenate(parts), np.concatenate(part_rows)
    if unique:  # a set of tokens per text, sorted: each word or n-gram counts once, and rows get shorter
        width = np.int64(len(index) + buckets)
        keys = np.sort(rows * width + values)  # by text, then id (np.sort: numpy 2's np.unique hashes, 50x slower here)
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        keys = keys[first]
        values, rows = keys % width, keys // width
    else:  # per text: its words, then its bigrams, then trigrams (a stable sort keeps that order)
        order = np.argsort(rows, kind="stable")
        values, rows = values[order], rows[order]
    return values.astype(np.int32), np.bincount(rows, minlength=len(texts)).astype(np.int64)


def ngram_hashes(words: list[str], ids: np.ndarray, row: np.ndarray, n: int):
    """(k, rolling hash of the n-gram of k+1 words starting at each position, valid) for k = 1..n-1.

    fastText-style hashed n-grams of consecutive words of one text (`valid`: the n-gram does not
    cross into the next text). Hashing runs on word ids; out-of-vocabulary words get a stable crc32
    of their text instead of the shared <unk> id, so their n-grams stay distinct. Word ids are
    small consecutive integers, so the caller scrambles the hash (`mix64`) before taking it modulo
    the buckets; without that, n-grams of frequent words would pile into a few buckets.
    """
    full = ids.astype(np.uint64)
    for j in np.flatnonzero(ids == 1):
        full[j] = zlib.crc32(words[j].encode()) + 2**32
    h = full
    for k in range(1, n):
        if len(full) <= k:
            break
        h = h[:-1] * np.uint64(PRIME) + full[k:]  # wraps around modulo 2**64: a rolling hash
        valid = row[k:] == row[: len(row) - k]
        yield k, h[valid], valid


def ngram_ids(words: list[str], ids: list[int], n: int, buckets: int, offset: int) -> list[int]:
    """The hashed n-gram ids (2..n) of one text's words, as ids offset + [0, buckets)."""
    arr, row = np.asarray(ids, dtype=np.int64), np.zeros(len(ids), dtype=np.int64)
    out = [(mix64(h + np.uint64(k)) % np.uint64(buckets)).astype(np.int64) + offset
           for k, h, _ in ngram_hashes(words, arr, row, n)]
    return np.concatenate(out).tolist() if out else []


def mix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer: every input bit flips about half of the output bits."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
