"""Word tokens and hashed n-grams of one text: the `words` tokenizer's whole algorithm.

Standard library and numpy only, and no honed imports: `honed export` copies this file into
ONNX bundles (as bundle_words.py), so a client tokenizes exactly as training did without honed.
"""

from __future__ import annotations

import itertools
import re
import zlib
from dataclasses import asdict, dataclass, fields
from typing import Optional

import numpy as np

PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1 of every vocabulary
PRIME = 1_000_003
BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# A run of word characters and apostrophes, without the apostrophes at its ends ("'tis'" -> "tis",
# "it's" stays): the same tokens as `[\w']+` with outer apostrophes stripped, in one regex call.
WORD = re.compile(r"\w(?:[\w']*\w)?")


@dataclass(frozen=True)
class TextSettings:
    """How texts become token ids: the text part of the recipe's data section, kept whole by the
    preprocessing (preprocess.json's "text") and read back by honed and by bundle clients alike."""

    tokenizer: str = "words"  # words | bpe | pretrained
    num_words: int = 10000  # vocabulary size, <pad> and <unk> included
    max_len: int = 500  # words (or sub-words) kept per text
    lowercase: bool = True
    keep_last: bool = False  # keep a long text's last max_len words instead of its first
    ngrams: int = 1  # words: hashed word n-grams up to this length
    buckets: int = 0  # hash buckets shared by word and character n-grams
    unique: bool = False  # words: each id once per text, sorted (a binary bag)
    char_ngrams: Optional[tuple[int, int]] = None  # words: hashed character n-grams of each word, lengths lo..hi
    pretrained: Optional[str] = None  # pretrained: the encoder whose tokenizer is used
    encoder_features: Optional[str] = None  # a frozen encoder whose sentence vector goes beside the ids
    hash_words: bool = False  # words: every word hashed into the buckets; no vocabulary learned from the texts

    @property
    def hashed(self) -> bool:
        """Whether ids above the vocabulary (hash buckets) are used."""
        return self.ngrams > 1 or self.char_ngrams is not None or self.hash_words

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict) -> "TextSettings":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in state.items() if k in known}
        if values.get("char_ngrams") is not None:
            values["char_ngrams"] = tuple(values["char_ngrams"])
        return cls(**values)


def words_of(text: str, lowercase: bool) -> list[str]:
    """Word tokens (see WORD) after removing HTML line breaks."""
    text = BREAK.sub(" ", text)
    return WORD.findall(text.lower() if lowercase else text)


def text_ids(text: str, index: dict[str, int], settings: TextSettings) -> list[int]:
    """The ids of one text: its first (or last) max_len words, their hashed word n-grams, then the hashed
    character n-grams of each word; a sorted set if unique."""
    values, _ = texts_ids([text], index, settings)
    return values.tolist()


def texts_ids(texts: list[str], index: dict[str, int], settings: TextSettings) -> tuple[np.ndarray, np.ndarray]:
    """(ids of all texts back to back as int32, ids per text), as text_ids gives them one by one."""
    types, kind, lengths, _ = word_kinds(texts, settings)
    return ids_of_words(types, kind, lengths, index, settings)


READ_BATCH = 2048  # texts whose words are held as Python strings at once (~7 MB for reviews), not a whole chunk


def word_kinds(texts: list[str], settings: TextSettings,
               count_all: bool = False) -> tuple[list[str], np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """The words of `texts`, read once: (the distinct words in first-seen order, each kept word as its place
    among them, kept words per text, and with `count_all` how often each distinct word occurs in the whole texts).

    A text keeps its first (or last) max_len words. Everything later works per distinct word (a vocabulary
    lookup, a hash, character n-grams) and is gathered for every position with one numpy index, so the
    per-word Python work is the regex and one dict lookup. `count_all` gives what fitting a vocabulary needs
    (every word counts, kept or not) from the same reading. Texts are read READ_BATCH at a time: a word's
    string lives only until its place is known.
    """
    s = settings
    place: dict[str, int] = {}  # distinct word -> its place, in first-seen order
    kinds, lengths = [], []
    for start in range(0, len(texts), READ_BATCH):
        batch = texts[start : start + READ_BATCH]
        if count_all:
            words = [words_of(text, s.lowercase) for text in batch]
        elif s.keep_last:
            words = [words_of(text, s.lowercase)[-s.max_len:] for text in batch]
        else:
            words = [words_of(text, s.lowercase)[: s.max_len] for text in batch]
        lengths.append(np.fromiter(map(len, words), dtype=np.int64, count=len(words)))
        flat = list(itertools.chain.from_iterable(words))
        for word in dict.fromkeys(flat):  # this batch's distinct words, first-seen order
            if word not in place:
                place[word] = len(place)
        kinds.append(np.fromiter(map(place.__getitem__, flat), dtype=np.int64, count=len(flat)))
    kind = np.concatenate(kinds) if kinds else np.zeros(0, dtype=np.int64)
    length = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    types = list(place)
    if not count_all:
        return types, kind, length, None
    counts = np.bincount(kind, minlength=len(types))
    within = np.arange(len(kind), dtype=np.int64) - np.repeat(np.cumsum(length) - length, length)
    kept = within >= np.repeat(length - s.max_len, length) if s.keep_last else within < s.max_len
    return types, kind[kept], np.minimum(length, s.max_len), counts


def ids_of_words(types: list[str], kind: np.ndarray, lengths: np.ndarray, index: dict[str, int],
                 settings: TextSettings) -> tuple[np.ndarray, np.ndarray]:
    """(ids of all texts back to back as int32, ids per text) from word_kinds' reading: each text's words, its
    hashed word n-grams, then the hashed character n-grams of each word; a sorted set per text if unique.

    Everything here runs on whole arrays at once: per-text numpy calls would cost more than the arithmetic.
    """
    s = settings
    if s.hash_words:  # each word's own hash: the same word always gets the same bucket, no vocabulary needed
        keys = word_hashes(types)
        ids_per_type = bucket_ids(keys, s.buckets, len(index))
    else:
        ids_per_type = np.fromiter(map(index.get, types, itertools.repeat(1)), dtype=np.int64, count=len(types))
        keys = hashed_unknowns(types, ids_per_type)
    ids = ids_per_type[kind]
    row = np.repeat(np.arange(len(lengths)), lengths)
    parts, part_rows = [ids], [row]
    if s.ngrams > 1:
        for k, hashed, valid in rolling_ngrams(keys[kind], row, s.ngrams):
            parts.append(bucket_ids(hashed + np.uint64(k), s.buckets, len(index)))
            part_rows.append(row[: len(row) - k][valid])
    if s.char_ngrams is not None:
        hashed, per_word = char_ngram_hashes(types, kind, *s.char_ngrams)
        parts.append(bucket_ids(hashed, s.buckets, len(index)))
        part_rows.append(np.repeat(row, per_word))
    if s.unique:  # a set of tokens per text, sorted: each word or n-gram counts once, and rows get shorter
        # one uint64 key per token (text, then id), made part by part: no whole-length copies of ids and texts
        keys = np.concatenate([(r.astype(np.uint64) << np.uint64(32)) | v.astype(np.uint64)
                               for v, r in zip(parts, part_rows)])
        del parts, part_rows
        keys.sort()  # (np.sort: numpy 2's np.unique hashes, 50x slower here)
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        keys = keys[first]
        # .view, not .astype: both fit in int64, and numpy's checked uint64 -> int64 cast is 8x slower
        values, rows = (keys & np.uint64(0xFFFFFFFF)).view(np.int64), (keys >> np.uint64(32)).view(np.int64)
    else:  # per text: its words, then its bigrams, then trigrams, then character n-grams (a stable sort keeps that order)
        values, rows = np.concatenate(parts), np.concatenate(part_rows)
        order = np.argsort(rows, kind="stable")
        values, rows = values[order], rows[order]
    return values.astype(np.int32), np.bincount(rows, minlength=len(lengths)).astype(np.int64)


def bucket_ids(hashes: np.ndarray, buckets: int, offset: int) -> np.ndarray:
    """Scrambled hashes -> ids offset + [0, buckets)."""
    return (mix64(hashes) % np.uint64(buckets)).view(np.int64) + offset  # (a view: under 2**63 either way)


MAX_WORD_CHARS = 64  # character n-grams are cut from a word's first 64 characters: a 99,000-character "word"
# would give 400,000 ids (and a request of 256 of them gigabytes); words that long are URLs, hashes or noise


def word_char_ngrams(word: str, lo: int, hi: int) -> list[int]:
    """Hashes of the character n-grams (lengths lo..hi) of one word padded with a space on each side
    (scikit-learn's char_wb analyzer): " film " -> " f", "fi", ..., "m ", " fi", ... The length is
    mixed into the hash, so an n-gram and a longer one never share a hash by construction."""
    padded = f" {word[:MAX_WORD_CHARS]} "
    return [zlib.crc32(padded[i : i + n].encode()) + (n << 32)
            for n in range(lo, hi + 1) for i in range(len(padded) - n + 1)]


def char_ngram_hashes(types: list[str], kind: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(character n-gram hashes of every word position, back to back as uint64; how many per position).

    A word's n-grams depend on the word alone, so each distinct word (`types`; `kind`: each position's
    place among them) is cut once and its hashes are gathered for every position it occurs at.
    """
    per_type = [word_char_ngrams(w, lo, hi) for w in types]
    sizes = np.fromiter(map(len, per_type), dtype=np.int64, count=len(per_type))
    table = np.fromiter(itertools.chain.from_iterable(per_type), dtype=np.uint64, count=int(sizes.sum()))
    starts = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    per_word = sizes[kind]
    total = int(per_word.sum())
    first = np.repeat(starts[kind], per_word)  # where each position's run of hashes starts in `table`
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(per_word) - per_word, per_word)
    return table[first + within], per_word


def ngram_hashes(words: list[str], ids: np.ndarray, row: np.ndarray, n: int):
    """(k, rolling hash of the n-gram of k+1 words starting at each position, valid) for k = 1..n-1, from
    each position's word and vocabulary id (see hashed_unknowns and rolling_ngrams)."""
    yield from rolling_ngrams(hashed_unknowns(words, ids), row, n)


def hashed_unknowns(words: list[str], ids: np.ndarray) -> np.ndarray:
    """Word ids as uint64, out-of-vocabulary words (id 1) replaced by a stable crc32 of their text instead of
    the shared <unk> id, so that their n-grams stay distinct."""
    full = ids.astype(np.uint64)
    unknown = np.flatnonzero(ids == 1)
    full[unknown] = word_hashes([words[j] for j in unknown])
    return full


def rolling_ngrams(keys: np.ndarray, row: np.ndarray, n: int):
    """(k, rolling hash of the n-gram of k+1 words starting at each position, valid) for k = 1..n-1.

    fastText-style hashed n-grams of consecutive words of one text (`valid`: the n-gram does not cross
    into the next text), hashed from each word's key (hashed_unknowns). Word ids are small consecutive
    integers, so the caller scrambles the hash (`mix64`) before taking it modulo the buckets; without
    that, n-grams of frequent words would pile into a few buckets.
    """
    h = keys
    for k in range(1, n):
        if len(keys) <= k:
            break
        h = h[:-1] * np.uint64(PRIME) + keys[k:]  # wraps around modulo 2**64: a rolling hash
        valid = row[k:] == row[: len(row) - k]
        yield k, h[valid], valid


def word_hashes(words: list[str]) -> np.ndarray:
    """A stable hash per word (crc32 of its UTF-8 bytes, above 2**32 so it never equals a vocabulary id)."""
    return np.fromiter((zlib.crc32(w.encode()) + 2**32 for w in words), dtype=np.uint64, count=len(words))


def ngram_ids(words: list[str], ids: list[int], n: int, buckets: int, offset: int) -> list[int]:
    """The hashed n-gram ids (2..n) of one text's words, as ids offset + [0, buckets)."""
    arr, row = np.asarray(ids, dtype=np.int64), np.zeros(len(ids), dtype=np.int64)
    out = [bucket_ids(h + np.uint64(k), buckets, offset) for k, h, _ in ngram_hashes(words, arr, row, n)]
    return np.concatenate(out).tolist() if out else []


def mix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer: every input bit flips about half of the output bits."""
    z = z ^ (z >> np.uint64(30))  # a new array: the caller's stays as it was; the rest works in place
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z
