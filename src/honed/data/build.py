"""DataSpec -> DataBundle: load the source, carve splits, fit preprocessing on train, transform all."""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

from honed.data import parallel
from honed.data.bundle import DataBundle, Split
from honed.data.preprocess import Preprocessor, TablePreprocessor, TextPreprocessor
from honed.data.raw import RawData, RawSplit
from honed.data.rules import text_settings
from honed.data.sources import SOURCES
from honed.data.split import carve, fold_ids
from honed.errors import UserError

if TYPE_CHECKING:
    from honed.recipe.schema import DataSpec

log = logging.getLogger("honed")


def load_raw(spec: DataSpec) -> RawData:
    raw = SOURCES.get(spec.source)(spec)
    if spec.task != "auto":
        raw.task = spec.task
    if len(raw.train) == 0:
        raise UserError(f"data source {spec.source!r} gave an empty training set")
    return raw


def split_raw(raw: RawData, spec: DataSpec) -> tuple[RawSplit, RawSplit | None, RawSplit]:
    """(train, val, test); test carved from train when the source has none. Seeded, stratified."""
    stratify = raw.task == "classification"  # chat examples: carved at random
    train, test = raw.train, raw.test
    if test is None:
        train, test = carve(train, spec.test_fraction, spec.seed, stratify, "test")
    val = None
    if spec.fold is not None:  # honed cv: one fold of the training rows validates, the others train
        f = spec.fold
        folds = fold_ids(train.y if stratify else None, f.count, spec.seed + 7919 * (f.repeat + 1), train.groups,
                         rows=len(train))
        train, val = train.take(np.flatnonzero(folds != f.index)), train.take(np.flatnonzero(folds == f.index))
    elif spec.val_fraction > 0:
        share = spec.val_fraction
        if spec.max_val_rows and share * len(train) > spec.max_val_rows:  # enough to choose an epoch by; the rest
            share = spec.max_val_rows / len(train)  # trains (as gradient boosting trains on every row)
            log.info(f"data: {spec.max_val_rows:,} validation rows ({share:.1%} of the training file; "
                     "data.max_val_rows)")
        train, val = carve(train, share, spec.seed + 1, stratify, "validation")
    if spec.max_train_rows and len(train) > spec.max_train_rows:
        # A sample for models too slow for the whole set on this machine (a Transformer on a CPU);
        # carved after validation, so validation and test scores stay comparable with full runs.
        _, train = carve(train, spec.max_train_rows / len(train), spec.seed + 2, stratify, "training sample")
        log.info(f"data: training on a sample of {len(train)} rows (data.max_train_rows)")
    return train, val, test


def make_preprocessor(raw: RawData, train: RawSplit, spec: DataSpec) -> Preprocessor:
    """An unfitted preprocessor for the source's kind; `auto` text settings are resolved from `train`'s texts."""
    if raw.kind == "chat":
        from honed.data.chat import ChatPreprocessor

        return ChatPreprocessor(spec.pretrained, spec.max_length, spec.train_on, spec.pack)
    if raw.kind == "text":
        pre = TextPreprocessor(raw.task, text_settings(spec, train.x), spec.label_column)
        pre.remember_vectors = True  # the same texts come back in later runs and trials
        return pre
    label_column = getattr(spec, "target", None) or "target"  # generated and bundled sets name none
    encoder = None
    if hasattr(train.x, "columns"):  # a table read from a file: columns of any type
        from honed.data.columns import ColumnEncoder

        encoder = ColumnEncoder(spec.scaling if spec.standardize else "none", spec.column_types,
                                spec.max_categories, spec.min_category_count)
    return TablePreprocessor(raw.task, list(raw.feature_names), spec.standardize, spec.standardize_target,
                             raw.image_shape, label_column, encoder)


_KEPT: OrderedDict | None = None  # data settings -> bundle, inside reuse_built_data()
KEEP = 2  # bundles held at once: a search that varies data settings keeps the last two


@contextlib.contextmanager
def reuse_built_data():
    """Inside this block, `build_data` hands back the bundle it built before for the same data settings.

    A search trains many models on one data set; reading it again for every trial would cost
    seconds each time. Training never modifies a bundle's tensors, so sharing them is safe.
    """
    global _KEPT
    previous, _KEPT = _KEPT, OrderedDict()
    try:
        yield
    finally:
        _KEPT = previous


def build_data(spec: DataSpec) -> DataBundle:
    """The DataBundle for `spec`, from the preprocessing cache when the same data was prepared before."""
    if _KEPT is None:
        return _build_data(spec)
    key = spec.model_dump_json()
    if key in _KEPT:
        _KEPT.move_to_end(key)
        log.info("data: reusing the data set built for an earlier trial")
        return _KEPT[key]
    bundle = _KEPT[key] = _build_data(spec)
    while len(_KEPT) > KEEP:
        _KEPT.popitem(last=False)
    return bundle


def _build_data(spec: DataSpec) -> DataBundle:
    from honed.data import cache

    use_cache = spec.cache and spec.source in cache.CACHED_SOURCES
    if use_cache:
        bundle = cache.load_cached(spec)
        if bundle is not None:
            if "auto" in (getattr(spec, "char_ngrams", None), getattr(spec, "ngrams", None)):  # what the rule chose
                chosen = bundle.preprocessor.settings
                chars = chosen.char_ngrams
                log.info(f"data: character n-grams {'%d-%d on' % chars if chars else 'off'}, word n-grams up to "
                         f"{chosen.ngrams} (auto, chosen when the cached data was prepared)")
            return bundle
    bundle = prepare(spec)
    if use_cache:
        try:
            folder = cache.store(spec, bundle)
            if bundle.test_texts is not None:  # read from the entry on demand, as a warm run reads them: IMDB's
                bundle.test_texts = cache.StoredTexts(folder)  # 25,000 test reviews are 33 MB held to the end
        except (OSError, ValueError, UserError) as e:  # a full disk, an unwritable $HONED_CACHE: costs time only
            log.warning(f"data: could not cache the preprocessed data ({e}); going on without ($HONED_CACHE "
                        "names the folder)")
    parallel.drop_last_transfers()
    give_back_freed_memory()
    return bundle


def give_back_freed_memory() -> bool:
    """Return to the system what reading and preprocessing freed (True where it could ask). glibc keeps freed
    blocks of mid-sized objects (a review's text, ~1 KB) in its heaps for reuse: after IMDB's 50,000 reviews are
    read, encoded and dropped, ~90 MB the training never reuses. Where the C library has no malloc_trim
    (macOS, musl), nothing."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


def prepare(spec: DataSpec) -> DataBundle:
    raw = load_raw(spec)
    train, val, test = split_raw(raw, spec)
    pre = make_preprocessor(raw, train, spec)
    if pre.kind == "chat":
        train_split = to_split(pre.fit(train), train, "train")
    else:  # fitted and transformed at once: a text's words are read once
        inputs = pre.fit_transform(train)
        train_split = Split(inputs, pre.targets(train.y))
    return DataBundle(
        task=pre.task,
        input_kind="tokens" if raw.kind in ("text", "chat") else "features",
        input_dim=pre.input_dim,
        output_dim=pre.output_dim,
        train=train_split,
        val=to_split(pre, val, "validation") if val is not None else None,
        test=to_split(pre, test, "test"),
        preprocessor=pre,
        image_shape=raw.image_shape,
        test_texts=list(test.x) if raw.kind == "text" else None,
    )


def to_split(pre: Preprocessor, split: RawSplit, name: str) -> Split:
    """A raw split through the fitted preprocessor. Chat examples become packed rows (several examples, or
    one cut, per row), each with a placeholder target: the labels travel inside the rows (data/chat.py)."""
    if pre.kind == "chat":
        import torch

        rows = pre.rows(split.x, name)
        return Split(rows, torch.zeros(len(rows)))
    return Split(pre.inputs(split.x), pre.targets(split.y))


def test_split(spec: DataSpec, pre: Preprocessor) -> Split:
    """The test split of `spec`'s data, transformed with an already fitted preprocessor."""
    raw = load_raw(spec)
    _, _, test = split_raw(raw, spec)
    return to_split(pre, test, "test")
