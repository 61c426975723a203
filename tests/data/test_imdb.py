import hashlib

import pytest

from honed.data import build_data, load_raw
from honed.data.download import download, md5_of
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
    from honed.data.sources import imdb

    monkeypatch.setattr(imdb, "URL", imdb_archive.as_uri())
    monkeypatch.setattr(imdb, "MD5", md5_of(imdb_archive))
    raw = load_raw(load_recipe({"data": {"source": "imdb"}}).data)
    assert len(raw.train) == 24
    assert (tmp_path / "cache" / "imdb" / "aclImdb_v1.tar.gz").is_file()
