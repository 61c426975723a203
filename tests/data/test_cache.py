import logging

import torch

from honed.cli import main
from honed.data import build_data, cache
from honed.recipe import load_recipe


def spec_of(path, **extra):
    return load_recipe({"data": {"source": "imdb", "path": str(path), "num_words": 30, **extra}}).data


def test_second_build_comes_from_the_cache_and_is_identical(imdb_archive, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="honed")
    first = build_data(spec_of(imdb_archive))
    assert "cached the preprocessed data" in caplog.text
    calls = []
    monkeypatch.setattr("honed.data.build.prepare", lambda spec: calls.append(spec))
    second = build_data(spec_of(imdb_archive))
    assert calls == [] and "using preprocessed data from the cache" in caplog.text
    for name in ("train", "val", "test"):
        a, b = getattr(first, name), getattr(second, name)
        assert torch.equal(a.x[:], b.x[:]) and torch.equal(a.y, b.y)
    assert second.preprocessor.tokenizer.vocab == first.preprocessor.tokenizer.vocab
    assert (second.task, second.input_dim, second.labels) == (first.task, first.input_dim, first.labels)
    # the first (cold) run also reads its test texts from the entry it wrote, not from a list held to the end
    assert isinstance(first.test_texts, cache.StoredTexts) and isinstance(second.test_texts, cache.StoredTexts)
    texts = [first.test_texts[i] for i in range(len(first.test_texts))]
    assert texts == [second.test_texts[i] for i in range(len(second.test_texts))] and len(texts) == len(first.test)
    assert "great" in " ".join(texts) or len(set(texts)) > 1


def test_other_settings_or_a_changed_file_miss_the_cache(imdb_archive):
    key = cache.cache_key(spec_of(imdb_archive))
    assert cache.cache_key(spec_of(imdb_archive, max_len=7)) != key
    assert cache.cache_key(spec_of(imdb_archive, cache=True)) == key
    imdb_archive.write_bytes(imdb_archive.read_bytes() + b"\0" * 1024)
    assert cache.cache_key(spec_of(imdb_archive)) != key


def test_a_damaged_entry_is_rebuilt(imdb_archive, caplog):
    """Each file a text entry holds, damaged in turn: the entry is rebuilt, identical to a fresh build."""
    caplog.set_level(logging.INFO, logger="honed")
    fresh = build_data(spec_of(imdb_archive))
    folder = cache.preprocessed_root() / cache.cache_key(spec_of(imdb_archive))
    files = sorted(p.name for p in folder.iterdir())
    assert "train_ids.npy" in files or any(f.endswith(".npy") for f in files)
    for name in files:
        (folder / name).write_bytes(b"garbage")
        caplog.clear()
        rebuilt = build_data(spec_of(imdb_archive))
        assert "cached the preprocessed data" in caplog.text, name  # rebuilt and stored again
        assert len(rebuilt.train) > 0
        assert torch.equal(rebuilt.train.x[:], fresh.train.x[:]) and torch.equal(rebuilt.test.y, fresh.test.y)


def test_cache_clear(imdb_archive, capsys):
    build_data(spec_of(imdb_archive))
    assert main(["cache", "info"]) == 0 and "1 preprocessed dataset" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0 and "removed 1" in capsys.readouterr().out
    assert not cache.preprocessed_root().exists()


def test_memory_freed_after_reading_goes_back_to_the_system():
    """Objects of a review's size come from malloc's heap, which keeps what they free once something allocated
    after them pins its top: 90 MB of 1.5 KB blocks stay resident after they are freed until the data stage
    asks malloc_trim to give them back."""
    import sys

    import pytest

    from honed.data.build import give_back_freed_memory

    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/status")

    def resident_mb() -> float:
        fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return int(fields["VmRSS"].split()[0]) / 1024

    blobs = [bytes(1500) + i.to_bytes(4, "little") for i in range(60_000)]
    pinned = bytes(2000)  # allocated after the blobs: the heap's top stays in use
    held = resident_mb()
    del blobs
    if not give_back_freed_memory():
        pytest.skip("this C library has no malloc_trim")
    assert held - resident_mb() > 50 and len(pinned) == 2000
