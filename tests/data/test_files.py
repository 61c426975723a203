import numpy as np
import torch
import pandas as pd
import pytest

from honed.data import build_data
from honed.data.words import TextSettings
from honed.errors import UserError
from honed.recipe import load_recipe


def text_spec(train, test=None, **extra):
    fields = {"source": "text_files", "train": str(train), **extra}
    if test:
        fields["test"] = str(test)
    return load_recipe({"data": fields}).data


def test_text_csv_with_string_labels_and_three_classes(text_csvs):
    train, test = text_csvs
    bundle = build_data(text_spec(train, test, val_fraction=0.2))
    assert bundle.task == "multiclass" and bundle.output_dim == 3
    assert bundle.labels == ["food", "politics", "sports"]
    assert len(bundle.test) == 15 and len(bundle.train) + len(bundle.val) == 45
    assert sorted(bundle.val.y.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # stratified


def test_jsonl_and_custom_columns(tmp_path):
    path = tmp_path / "d.jsonl"
    pd.DataFrame({"review": ["good", "bad", "fine", "poor"] * 5, "y": [1, 0, 1, 0] * 5}).to_json(path, orient="records", lines=True)
    bundle = build_data(text_spec(path, text_column="review", label_column="y"))
    assert bundle.task == "binary" and bundle.labels == ["0", "1"]


def test_compressed_tables_read_like_plain_ones(tmp_path):
    frame = pd.DataFrame({"text": ["good", "bad", "fine", "poor"] * 5, "label": [1, 0, 1, 0] * 5})
    frame.to_csv(tmp_path / "d.csv.gz", index=False)
    frame.to_json(tmp_path / "d.jsonl.xz", orient="records", lines=True)
    for name in ("d.csv.gz", "d.jsonl.xz"):
        bundle = build_data(text_spec(tmp_path / name))
        assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 20
    with pytest.raises(UserError, match="unsupported file type '.txt'"):
        build_data(text_spec(tmp_path / "d.txt.gz")) if (tmp_path / "d.txt.gz").write_text("x") else None


def test_text_errors(tmp_path, text_csvs):
    train, _ = text_csvs
    with pytest.raises(UserError, match="column 'body' is not in"):
        build_data(text_spec(train, text_column="body"))
    one = tmp_path / "one.csv"
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "x", "x"]}).to_csv(one, index=False)
    with pytest.raises(UserError, match="only one class"):
        build_data(text_spec(one, val_fraction=0))
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    with pytest.raises(UserError, match="no rows"):
        build_data(text_spec(empty))
    with pytest.raises(UserError, match="file not found"):
        build_data(text_spec(tmp_path / "missing.csv"))


def test_tabular_standardization_uses_train_statistics_only(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(5, 2, 200), "b": rng.normal(-3, 0.5, 200)})
    frame["y"] = frame.a * 2 + frame.b
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    bundle = build_data(load_recipe({"data": {"source": "tabular", "path": str(path), "target": "y"}}).data)
    assert bundle.task == "regression"
    assert torch_close(bundle.train.x.mean(0), 0.0) and torch_close(bundle.train.x.std(0, unbiased=False), 1.0)
    assert not torch_close(bundle.test.x.mean(0), 0.0, tol=1e-6)  # test is transformed, not refit


def torch_close(t, value, tol=1e-4):
    return bool(((t - value).abs() < tol).all())


def test_tabular_errors(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "name": list("vwxyz"), "y": [1.0, 2, 3, 4, 5]}).to_csv(path, index=False)
    spec = lambda **f: load_recipe({"data": {"source": "tabular", "path": str(path), **f}}).data  # noqa: E731
    with pytest.raises(UserError, match="column 'price' is not in"):
        build_data(spec(target="price"))
    # a text column is a category (one 0/1 column per value), no longer refused
    names = build_data(spec(target="y")).preprocessor.feature_names  # the rows left after test and validation splits
    assert names[0] == "a" and len(names) >= 3 and all(n.startswith("name=") for n in names[1:])
    with pytest.raises(UserError, match="data.target is required"):
        build_data(spec())


def test_sklearn_sets():
    digits = build_data(load_recipe({"data": {"source": "sklearn", "name": "digits"}}).data)
    assert digits.task == "multiclass" and digits.output_dim == 10 and digits.image_shape == (1, 8, 8)
    diabetes = build_data(load_recipe({"data": {"source": "sklearn", "name": "diabetes"}}).data)
    assert diabetes.task == "regression" and diabetes.input_dim == 10


def test_word_tokenizer_matches_a_plain_python_reference(monkeypatch):
    """Vocabulary = most frequent training words (ties: first seen); unknown words -> 1; parallel == serial."""
    from collections import Counter
    import re

    from honed.data import text

    texts = [f"Word{i % 7} and THE film<br />it's word{i % 3}!" for i in range(50)]
    serial = text.WordTokenizer(TextSettings(num_words=6, max_len=4)).fit(texts)
    words = [[w for w in re.findall(r"[\w']+", t.replace("<br />", " ").lower())] for t in texts]
    expected = ["<pad>", "<unk>"] + [w for w, _ in Counter(w for d in words for w in d).most_common(4)]
    assert serial.vocab == expected
    ids = serial.encode(["the film and word0 unknownword"])[:]
    assert ids.tolist() == [[serial.index["the"], serial.index["film"], serial.index["and"], 1]]
    monkeypatch.setattr(text.parallel, "PARALLEL_MIN", 10)
    parallel = text.WordTokenizer(TextSettings(num_words=6, max_len=4)).fit(texts)
    assert parallel.vocab == serial.vocab
    assert torch.equal(parallel.encode(texts)[:], serial.encode(texts)[:])


@pytest.mark.parametrize("settings", [
    {"num_words": 8, "max_len": 5, "ngrams": 2, "buckets": 97, "unique": True},
    {"num_words": 8, "max_len": 3, "keep_last": True, "ngrams": 3, "buckets": 97, "char_ngrams": (2, 4)},
])
def test_fitting_and_encoding_in_one_reading_gives_what_fit_then_encode_gives(monkeypatch, settings):
    """fit_encode reads each text once (and counts words past max_len, as fit does): the same vocabulary,
    ties in the same first-seen order, and the same ids, serially and over worker processes."""
    from honed.data import text

    texts = [f"Word{i % 7} and THE film<br />it's word{i % 3} caf\u00e9 {'x ' * (i % 4)}!" for i in range(60)] + [""]
    for threshold in (4000, 10):
        monkeypatch.setattr(text.parallel, "PARALLEL_MIN", threshold)
        reference = text.WordTokenizer(TextSettings(**settings)).fit(texts)
        fused = text.WordTokenizer(TextSettings(**settings))
        rows = fused.fit_encode(texts)
        assert fused.vocab == reference.vocab
        expected = reference.encode(texts)
        assert torch.equal(rows.values, expected.values) and torch.equal(rows.offsets, expected.offsets)


@pytest.mark.parametrize("settings", [
    {"num_words": 8, "max_len": 5, "ngrams": 3, "buckets": 97, "unique": True},
    {"num_words": 8, "max_len": 4, "ngrams": 2, "buckets": 97, "char_ngrams": (2, 3)},
    {"hash_words": True, "max_len": 6, "ngrams": 2, "buckets": 97, "unique": True, "char_ngrams": (3, 3)},
])
def test_ids_made_a_few_texts_at_a_time_are_each_texts_own_ids(monkeypatch, settings):
    """ids_of_words works IDS_BATCH texts at a time: with batches of 3 texts (and empty texts at a batch's edge),
    each text's ids equal those of the text encoded alone, in the same order."""
    from honed.data import text, words

    texts = [f"Word{i % 7} and THE film it's word{i % 3} {'x ' * (i % 4)}!" if i % 5 else "" for i in range(31)]
    tokenizer = text.WordTokenizer(TextSettings(**settings)).fit(texts)
    alone = [words.text_ids(t, tokenizer.index, tokenizer.settings) for t in texts]
    monkeypatch.setattr(words, "IDS_BATCH", 3)
    values, counts = words.texts_ids(texts, tokenizer.index, tokenizer.settings)
    assert counts.tolist() == [len(a) for a in alone]
    assert values.tolist() == [i for a in alone for i in a]


@pytest.mark.parametrize("lowercase", [True, False])
def test_reading_words_with_numpy_finds_the_regex_words_of_each_text(monkeypatch, lowercase):
    """word_kinds finds words on code points with numpy; words_of (one regex) defines them: the same words
    text by text, first-seen order and counts, on random texts of awkward characters (combining marks,
    NUL, lone surrogates, runs of apostrophes, words past the hashed length), over several batches, with
    and without pandas' hash table."""
    import random
    import sys
    from collections import Counter

    from honed.data import words

    alphabet = list("ab'_ Z1\x00\n") + ["\u0301", "\u0130", "\u03a3", "\u03c2", "\u00b2", "\u0663", "\u3000",
                                         "<br/>", "<BR />", "\u65e5\u672c", "\ud800", "\u00e9", "x" * 30, "'" * 3]
    rng = random.Random(0)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    expected = [words.words_of(t, lowercase) for t in texts]
    monkeypatch.setattr(words, "READ_BATCH", 64)
    for pandas in (sys.modules.get("pandas"), None):  # None: as in a bundle without pandas
        monkeypatch.setitem(sys.modules, "pandas", pandas)
        for keep_last in (False, True):
            settings = TextSettings(lowercase=lowercase, max_len=6, keep_last=keep_last)
            types, kind, lengths, counts = words.word_kinds(texts, settings, count_all=True)
            found = np.split(np.array(types, dtype=object)[kind], np.cumsum(lengths)[:-1])
            assert [list(f) for f in found] == [e[-6:] if keep_last else e[:6] for e in expected]
            assert types == list(dict.fromkeys(w for e in expected for w in e))
            every = Counter(w for e in expected for w in e)
            assert counts.tolist() == [every[t] for t in types]


def test_bpe_tokenizer_round_trips_through_a_run(tmp_path, text_csvs):
    import honed

    train, test = text_csvs
    recipe = {"data": {"source": "text_files", "train": str(train), "test": str(test), "tokenizer": "bpe",
                       "num_words": 60}, "model": {"name": "bag"}, "train": {"epochs": 2}}
    run = honed.train(recipe, out=tmp_path / "run")
    assert (run.path / "tokenizer.json").is_file()
    frame = honed.predict(run.path, ["goal team", "vote law"])
    assert frame["text"].tolist() == ["goal team", "vote law"] and frame.columns[1] == "prediction"  # joins back


def test_keep_tokens_last_keeps_the_end_of_long_texts():
    from honed.data import text

    texts = ["one two three four five six", "one two"]
    first = text.WordTokenizer(TextSettings(num_words=20, max_len=3)).fit(texts)
    last = text.WordTokenizer(TextSettings(num_words=20, max_len=3, keep_last=True)).fit(texts)
    ix = first.index
    assert first.encode(texts[:1])[:].tolist() == [[ix["one"], ix["two"], ix["three"]]]
    assert last.encode(texts[:1])[:].tolist() == [[ix["four"], ix["five"], ix["six"]]]
    assert last.encode(texts[1:])[:].tolist() == [[ix["one"], ix["two"]]]  # short texts are not touched


def splitmix64(z: int) -> int:
    """Reference splitmix64 finalizer in plain Python integers."""
    M = 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % M
    return z ^ (z >> 31)


def test_hashed_ngrams_match_a_reference_hash():
    import zlib

    from honed.data import text, words

    t = text.WordTokenizer(TextSettings(num_words=5, max_len=10, ngrams=3, buckets=1000)).fit(["a b c a b", "a b"])
    ids = t.encode(["a b zz"])[0].tolist()
    full = [t.index["a"], t.index["b"], zlib.crc32(b"zz") + 2**32]  # the unknown word keeps its own hash
    M, P, off = 2**64, words.PRIME, len(t.vocab)
    bucket = lambda h, k: splitmix64((h + k) % M) % 1000 + off  # noqa: E731
    bigrams = [bucket((full[0] * P + full[1]) % M, 1), bucket((full[1] * P + full[2]) % M, 1)]
    trigram = bucket(((full[0] * P + full[1]) % M * P + full[2]) % M, 2)
    assert ids == [t.index["a"], t.index["b"], 1] + bigrams + [trigram]
    assert t.vocab_size == len(t.vocab) + 1000
    assert max(ids) < t.vocab_size


def reference_ids(text: str, index: dict, max_len: int, keep_last: bool, n: int, buckets: int, unique: bool) -> list[int]:
    """One text's ids in plain Python integers: words, then 2-grams, then 3-grams...; a sorted set if unique."""
    import re
    import zlib

    from honed.data import words

    tokens = [w.strip("'") for w in re.findall(r"[\w']+", re.sub(r"<br\s*/?>", " ", text, flags=re.I).lower())]
    tokens = [w for w in tokens if w]
    tokens = tokens[-max_len:] if keep_last else tokens[:max_len]
    ids = [index.get(w, 1) for w in tokens]
    full = [i if i != 1 else zlib.crc32(w.encode()) + 2**32 for w, i in zip(tokens, ids)]
    out = list(ids)
    for k in range(1, n):
        for start in range(len(full) - k):
            h = full[start]
            for j in range(start + 1, start + k + 1):
                h = (h * words.PRIME + full[j]) % 2**64
            out.append(splitmix64((h + k) % 2**64) % buckets + len(index))
    return sorted(set(out)) if unique else out


@pytest.mark.parametrize("keep_last,unique", [(False, False), (True, True)])
def test_a_batch_of_texts_encodes_like_each_text_alone(keep_last, unique):
    """The vectorized batch path against a per-text plain-Python reference: no n-gram crosses two texts."""
    import random

    from honed.data import text

    rng = random.Random(0)
    vocab = "good bad film plot not very it's acting zzz qqq".split()
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))) + rng.choice(["", "<br />x", " ''"])
             for _ in range(40)] + [""]
    t = text.WordTokenizer(TextSettings(num_words=7, max_len=9, keep_last=keep_last, ngrams=3, buckets=97, unique=unique)).fit(texts)
    got = t.encode(texts)
    for i, doc in enumerate(texts):
        expected = reference_ids(doc, t.index, 9, keep_last, 3, 97, unique)
        assert got[i][: len(expected)].tolist() == expected and int(got.lengths[i]) == len(expected)


def test_ngram_hashes_of_frequent_words_spread_like_random_buckets():
    """Bigrams of small consecutive word ids must not pile into few buckets (a plain rolling hash does)."""
    from honed.data.words import ngram_ids

    ids = list(range(2, 20_002))
    buckets = ngram_ids([str(i) for i in ids], ids, 2, 2_000_000, 0)
    collisions = len(buckets) - len(set(buckets))
    expected = len(buckets) ** 2 / (2 * 2_000_000)  # birthday bound: about 100
    assert collisions < 2 * expected


def test_unique_tokens_give_each_word_and_ngram_once_sorted():
    from honed.data import text

    t = text.WordTokenizer(TextSettings(num_words=10, max_len=20, ngrams=2, buckets=50, unique=True)).fit(["a b a b a b c"])
    row = [i for i in t.encode(["a b a b a b"])[0].tolist() if i]
    assert row == sorted(set(row))
    assert len(row) == 4  # a, b, "a b", "b a"


def test_ngrams_need_the_words_tokenizer():
    with pytest.raises(UserError, match="ngrams"):
        load_recipe({"data": {"ngrams": 2, "tokenizer": "bpe"}})


def test_results_come_back_from_the_pool_through_a_1_mb_pipe():
    """A 60 MB result through a 64 KB pipe is a thousand reads, each waiting for the interpreter's lock."""
    fcntl = pytest.importorskip("fcntl")
    if not hasattr(fcntl, "F_GETPIPE_SZ"):
        pytest.skip("pipe sizes are Linux's")
    from honed.data import parallel

    pool = parallel._shared_pool()
    assert fcntl.fcntl(pool._result_queue._reader.fileno(), fcntl.F_GETPIPE_SZ) == 1 << 20
    assert parallel.in_worker(bytes, 3 << 20) == bytes(3 << 20)  # more than the pipe holds still arrives whole



def test_the_pool_lets_go_of_the_last_chunk_it_sent_when_asked():
    """The queue's feeder thread keeps the last call it pickled until it sends the next: a preparation's last
    chunk of reviews stayed alive to the end of a run."""
    import tracemalloc

    from honed.data import parallel

    parallel.in_worker(int)  # the pool started before measuring
    tracemalloc.start()
    try:
        chunk = bytes(20 << 20)
        assert parallel.in_worker(len, chunk) == 20 << 20
        del chunk
        held = tracemalloc.get_traced_memory()[0]
        parallel.drop_last_transfers()
        assert held - tracemalloc.get_traced_memory()[0] > 19 << 20  # the pickled call went
    finally:
        tracemalloc.stop()
