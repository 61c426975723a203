"""Word tokens and hashed n-grams of one text: the `words` tokenizer's whole algorithm.

Standard library and numpy only, and no honed imports: `honed export` copies this file into
ONNX bundles (as bundle_words.py), so a client tokenizes exactly as training did without honed.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import sys
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


READ_BATCH = 2048  # texts read at once: their code points and word positions (~30 MB for reviews), not a chunk


def word_kinds(texts: list[str], settings: TextSettings,
               count_all: bool = False) -> tuple[list[str], np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """The words of `texts`, read once: (the distinct words in first-seen order, each kept word as its place
    among them, kept words per text, and with `count_all` how often each distinct word occurs in the whole texts).

    The same words as words_of gives text by text, found with numpy on the texts' code points (word_spans)
    and told apart by a 64-bit key each (word_keys): no Python string is made for a word but the first
    occurrence of each distinct one. A text keeps its first (or last) max_len words. Everything later works
    per distinct word (a vocabulary lookup, a hash, character n-grams) and is gathered for every position
    with one numpy index. `count_all` gives what fitting a vocabulary needs (every word counts, kept or not)
    from the same reading.
    """
    s = settings
    kinds, lengths, counted, distinct_keys, distinct_words = [], [], [], [], []
    numbered = 0  # distinct words of the batches before
    for start in range(0, len(texts), READ_BATCH):
        joined, points, starts, ends, per_text = word_spans(texts[start : start + READ_BATCH], s.lowercase)
        kept = kept_positions(per_text, s.max_len, s.keep_last)
        if not count_all:
            starts, ends = starts[kept], ends[kept]
        keys = word_keys(joined, points, starts, ends)
        codes, first = first_seen_codes(keys)  # this batch's distinct words, first-seen order
        codes += numbered
        numbered += len(first)
        distinct_keys.append(keys[first])
        distinct_words.extend(joined[a:b] for a, b in zip(starts[first].tolist(), ends[first].tolist()))
        kinds.append(codes[kept] if count_all else codes)
        if count_all:
            counted.append(codes)
        lengths.append(np.minimum(per_text, s.max_len))
    # every batch's distinct words numbered again, once over all: their places in first-seen order
    place, first = first_seen_codes(np.concatenate(distinct_keys) if distinct_keys else np.zeros(0, np.uint64))
    types = [distinct_words[i] for i in first.tolist()]
    kind = place[np.concatenate(kinds)] if kinds else np.zeros(0, dtype=np.int64)
    length = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    if not count_all:
        return types, kind, length, None
    every = place[np.concatenate(counted)] if counted else np.zeros(0, dtype=np.int64)
    return types, kind, length, np.bincount(every, minlength=len(types))


ANY_WORD_CHAR = re.compile(r"\w")
LATIN1_WORD_CHAR = np.array([ANY_WORD_CHAR.match(chr(c)) is not None for c in range(256)])
APOSTROPHE = ord("'")


def word_spans(texts: list[str], lowercase: bool) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(the texts joined by NUL, its code points, where each word starts and ends in it, words per text): the words
    `WORD.findall` finds in each text after BREAK and lowercasing, found on code points with numpy.

    WORD matches a run of word characters and apostrophes from its first word character to its last: so
    each such run, less the apostrophes at its ends, is a word, and a run of apostrophes alone is none. NUL
    is no word character, so no word spans two texts. Code points past Latin-1 are classed by `\\w` itself.
    """
    parts = [BREAK.sub(" ", t) for t in texts]
    if lowercase:
        parts = [t.lower() for t in parts]
    joined = "\0".join(parts)
    points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    word = LATIN1_WORD_CHAR[points.view(np.uint8)[::4]]  # by the lowest byte, then the rest corrected
    high = np.flatnonzero(points > 255)
    if len(high):
        distinct, which = np.unique(points[high], return_inverse=True)
        word[high] = np.array([ANY_WORD_CHAR.match(chr(c)) is not None for c in distinct.tolist()])[which]
    apostrophe = points == APOSTROPHE
    starts, ends = runs(word | apostrophe)
    quote_starts, quote_ends = runs(apostrophe)
    leading = np.flatnonzero(~word[starts])  # a run that opens with apostrophes starts after them
    starts[leading] = quote_ends[np.searchsorted(quote_starts, starts[leading])]
    trailing = np.flatnonzero(~word[ends - 1])  # and one that closes with them ends before them
    ends[trailing] = quote_starts[np.searchsorted(quote_ends, ends[trailing])]
    real = starts < ends  # not apostrophes alone
    starts, ends = starts[real], ends[real]
    text_starts = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(t) + 1 for t in parts], out=text_starts[1:])
    per_text = np.diff(np.searchsorted(starts, text_starts))
    return joined, points, starts, ends, per_text


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(where each run of True starts, where it ends) in a boolean array."""
    edges = np.flatnonzero(np.diff(mask, prepend=False, append=False))  # diff of booleans: where they change
    return edges[::2].copy(), edges[1::2].copy()


def kept_positions(per_text: np.ndarray, max_len: int, keep_last: bool) -> np.ndarray:
    """Whether each word (all texts' back to back, `per_text` of each) is among its text's first (or last)
    max_len."""
    within = np.arange(int(per_text.sum()), dtype=np.int64) - np.repeat(np.cumsum(per_text) - per_text, per_text)
    return within >= np.repeat(per_text - max_len, per_text) if keep_last else within < max_len


SHORT_WORD = 24  # words up to this long are keyed by a hash of their code points computed in numpy
KEY_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: a multiplier that loses no bit


def word_keys(joined: str, points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 64-bit key per word (`joined[start:end]`; `points`: its code points): equal words get equal keys,
    different ones different keys but for a chance of about 2**-64 per pair.

    Words of up to SHORT_WORD characters (nearly all) get a polynomial hash of their length and code points,
    one character position at a time over all words still that long (longest first, so those are a prefix);
    longer ones blake2b of their text, with the top bit set.
    """
    lengths = ends - starts
    keys = np.empty(len(starts), dtype=np.uint64)
    if not len(starts):
        return keys
    short = np.flatnonzero(lengths <= SHORT_WORD)
    order = short[np.argsort(SHORT_WORD - lengths[short].astype(np.uint8), kind="stable")]  # longest first
    size, at = lengths[order], starts[order]
    h = size.astype(np.uint64)
    still = np.searchsorted(-size, -np.arange(int(size[0]) if len(size) else 0), side="left")  # longer than k
    for m in still.tolist():  # in place: this loop is most of the reading's arithmetic
        np.multiply(h[:m], KEY_BASE, out=h[:m])
        np.add(h[:m], points[at[:m]], out=h[:m], casting="unsafe")
        at[:m] += 1
    keys[order] = h
    for j in np.flatnonzero(lengths > SHORT_WORD).tolist():
        digest = hashlib.blake2b(joined[starts[j] : ends[j]].encode("utf-8", "surrogatepass"), digest_size=8)
        keys[j] = int.from_bytes(digest.digest(), "little") | (1 << 63)
    return keys


def first_seen_codes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each key's code, numbering the distinct keys in first-seen order; where each distinct key is first)."""
    pd = sys.modules.get("pandas")  # a hash table, no sort: when honed has loaded pandas already (loading
    # it for this alone would cost more than it saves; and a bundle may have no pandas)
    if pd is not None and not getattr(getattr(pd, "__spec__", None), "_initializing", True):
        codes = pd.factorize(keys)[0].astype(np.int64)
    else:
        distinct, first, which = np.unique(keys, return_index=True, return_inverse=True)
        rank = np.empty(len(distinct), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(distinct))
        codes = rank[which.reshape(-1)]
    seen = np.maximum.accumulate(codes) if len(codes) else codes
    first = np.flatnonzero(np.diff(seen, prepend=-1) > 0)  # the running maximum grows by one at each new key
    return codes, first


IDS_BATCH = 2048  # texts whose ids are made at once: a whole chunk's n-gram arrays would be ~10 x 8 bytes a word


def ids_of_words(types: list[str], kind: np.ndarray, lengths: np.ndarray, index: dict[str, int],
                 settings: TextSettings) -> tuple[np.ndarray, np.ndarray]:
    """(ids of all texts back to back as int32, ids per text) from word_kinds' reading: each text's words, its
    hashed word n-grams, then the hashed character n-grams of each word; a sorted set per text if unique.

    What depends on a word alone (its id, its hash, its character n-grams) is worked out once per distinct word;
    the rest runs on whole arrays IDS_BATCH texts at a time (per-text numpy calls would cost more than the
    arithmetic, and a whole chunk at once holds a few hundred MB of transient arrays).
    """
    s = settings
    if s.hash_words:  # each word's own hash: the same word always gets the same bucket, no vocabulary needed
        keys = word_hashes(types)
        ids_per_type = bucket_ids(keys, s.buckets, len(index))
    else:
        ids_per_type = np.fromiter(map(index.get, types, itertools.repeat(1)), dtype=np.int64, count=len(types))
        keys = hashed_unknowns(types, ids_per_type)
    chars = char_ngram_table(types, *s.char_ngrams) if s.char_ngrams is not None else None
    bounds = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=bounds[1:])
    values, counts = [], []
    for a in range(0, len(lengths), IDS_BATCH):
        b = min(a + IDS_BATCH, len(lengths))
        v, n = batch_ids(ids_per_type, keys, chars, kind[bounds[a] : bounds[b]], lengths[a:b], len(index), s)
        values.append(v)
        counts.append(n)
    if not values:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    return np.concatenate(values), np.concatenate(counts)


def batch_ids(ids_per_type: np.ndarray, keys: np.ndarray, chars: tuple | None, kind: np.ndarray,
              lengths: np.ndarray, offset: int, s: TextSettings) -> tuple[np.ndarray, np.ndarray]:
    """ids_of_words for a batch of texts (`kind`: their word positions; `lengths`: words per text)."""
    ids = ids_per_type[kind]
    row = np.repeat(np.arange(len(lengths)), lengths)
    parts, part_rows = [ids], [row]
    if s.ngrams > 1:
        for k, hashed, valid in rolling_ngrams(keys[kind], row, s.ngrams):
            parts.append(bucket_ids(hashed + np.uint64(k), s.buckets, offset))
            part_rows.append(row[: len(row) - k][valid])
    if chars is not None:
        hashed, per_word = char_ngrams_at(chars, kind)
        parts.append(bucket_ids(hashed, s.buckets, offset))
        part_rows.append(np.repeat(row, per_word))
    if s.unique:  # a set of tokens per text, sorted: each word or n-gram counts once, and rows get shorter
        # one int64 key per token (text, then id; both under 2**31), written part by part into one array
        keys = np.empty(sum(map(len, parts)), dtype=np.int64)
        at = 0
        for v, r in zip(parts, part_rows):
            np.left_shift(r, 32, out=keys[at : at + len(v)])
            keys[at : at + len(v)] |= v
            at += len(v)
        del parts, part_rows
        keys.sort()  # (np.sort: numpy 2's np.unique hashes, 50x slower here)
        first = np.ones(len(keys), dtype=bool)
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        keys = keys[first]
        values, rows = keys & 0xFFFFFFFF, keys >> 32
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


def char_ngram_table(types: list[str], lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct word's character n-gram hashes cut once: (all of them back to back as uint64, where each
    word's run starts, how many each word has)."""
    per_type = [word_char_ngrams(w, lo, hi) for w in types]
    sizes = np.fromiter(map(len, per_type), dtype=np.int64, count=len(per_type))
    table = np.fromiter(itertools.chain.from_iterable(per_type), dtype=np.uint64, count=int(sizes.sum()))
    starts = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    return table, starts, sizes


def char_ngrams_at(chars: tuple[np.ndarray, np.ndarray, np.ndarray], kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(character n-gram hashes of every word position, back to back as uint64; how many per position): each
    position's word's run in char_ngram_table's `chars` (`kind`: each position's place among the distinct words)."""
    table, starts, sizes = chars
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
