import gzip
import hashlib

import pytest

from honed.data import build_data, load_raw
from honed.data.download import download, md5_of
from honed.data.sources import imdb
from honed.errors import UserError
from honed.recipe import load_recipe


def imdb_spec(path, **extra):
    return load_recipe({"data": {"source": "imdb", "path": str(path), **extra}}).data


@pytest.mark.parametrize("which", ["imdb_archive", "imdb_folder"])
def test_reads_the_official_layout(which, request):
    raw = load_raw(imdb_spec(request.getfixturevalue(which)))
    assert len(raw.train) == 24 and len(raw.test) == 24  # unsup and README are ignored
    assert sorted(set(raw.train.y)) == ["neg", "pos"]
    assert all("<br" in t for t in raw.train.x)  # raw text; cleaning is preprocessing's job


def test_archive_and_folder_give_the_same_data(imdb_archive, imdb_folder):
    a, b = load_raw(imdb_spec(imdb_archive)), load_raw(imdb_spec(imdb_folder))
    assert a.train.x == b.train.x and list(a.test.y) == list(b.test.y)
    assert load_raw(imdb_spec(imdb_folder.parent)).train.x == a.train.x  # the folder above aclImdb works too


def test_preprocessing_is_fit_on_train_and_splits_are_stratified(imdb_archive):
    bundle = build_data(imdb_spec(imdb_archive, num_words=20, max_len=6, val_fraction=0.25))
    assert bundle.task == "binary" and bundle.labels == ["neg", "pos"]
    assert len(bundle.train) == 18 and len(bundle.val) == 6 and len(bundle.test) == 24
    assert bundle.val.y.sum() == 3  # stratified: half of the validation split is positive
    assert bundle.train.x.shape[1] <= 6 and bundle.input_dim <= 20
    vocab = bundle.preprocessor.tokenizer.index
    assert vocab["<pad>"] == 0 and vocab["<unk>"] == 1
    assert "br" not in vocab  # HTML line breaks removed


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no IMDB archive or folder"):
        load_raw(imdb_spec(tmp_path / "nope.tar.gz"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no aclImdb/train"):
        load_raw(imdb_spec(tmp_path / "empty"))


def test_download_verifies_the_checksum(tmp_path, imdb_archive):
    url = imdb_archive.as_uri()
    good = md5_of(imdb_archive)
    dest = download(url, tmp_path / "cache" / "a.tar.gz", md5=good)
    assert md5_of(dest) == good == hashlib.md5(imdb_archive.read_bytes()).hexdigest()
    with pytest.raises(UserError, match="md5"):
        download(url, tmp_path / "cache" / "b.tar.gz", md5="0" * 32)
    assert not (tmp_path / "cache" / "b.tar.gz").exists()


def test_no_path_downloads_into_the_cache(monkeypatch, imdb_archive, tmp_path):
    monkeypatch.setattr(imdb, "URL", imdb_archive.as_uri())
    monkeypatch.setattr(imdb, "MD5", md5_of(imdb_archive))
    raw = load_raw(load_recipe({"data": {"source": "imdb"}}).data)
    assert len(raw.train) == 24
    assert (tmp_path / "cache" / "imdb" / "aclImdb_v1.tar.gz").is_file()


def readers() -> list:
    """The archive readers: libarchive's (C) where it is installed, and tarfile's."""
    try:
        import libarchive  # noqa: F401
    except (ImportError, OSError) as e:  # the package, or its C library, missing
        return [imdb.read_tar, pytest.param(imdb.read_archive, marks=pytest.mark.skip(reason=f"libarchive: {e}"))]
    return [imdb.read_tar, imdb.read_archive]


@pytest.mark.parametrize("read", readers())
def test_both_readers_find_every_review_and_only_reviews(imdb_archive, imdb_folder, read):
    expected = sorted(imdb.read_folder(imdb_folder))  # the same files extracted: read from the file system
    assert sorted(read(imdb_archive)) == expected and len(expected) == 48


@pytest.mark.parametrize("read", readers())
def test_a_damaged_archive_or_an_oversized_review_is_one_line(imdb_archive, tmp_path, read, monkeypatch):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(imdb_archive.read_bytes()[:200])
    plain = tmp_path / "plain.tar.gz"
    plain.write_bytes(gzip.compress(b"not a tar archive at all" * 40))
    for damaged in (cut, plain, tmp_path):
        with pytest.raises(UserError, match="not a readable IMDB archive") as error:
            read(damaged)
        assert "\n" not in str(error.value) and "retcode" not in str(error.value)
    monkeypatch.setattr(imdb, "MAX_REVIEW_BYTES", 10)
    with pytest.raises(UserError, match=r"aclImdb/.*\.txt holds \d+ bytes; a review may hold at most 10"):
        read(imdb_archive)
