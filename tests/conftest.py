"""Shared fixtures: small generated data only (no downloads, no ../shared)."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import torch

import honed

POS = ["a wonderful film, great acting and a great story", "loved it, brilliant and moving", "great fun, superb cast"]
NEG = ["a terrible film, awful acting and a dull story", "hated it, boring and bad", "awful mess, worst cast"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test runs in its own folder with its own cache directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HONED_CACHE", str(tmp_path / "cache"))


def imdb_reviews(n_per_label: int = 12) -> dict[str, str]:
    """{archive member name: text} in the official aclImdb layout."""
    files = {}
    for split in ("train", "test"):
        for label, texts, rating in (("pos", POS, 9), ("neg", NEG, 2)):
            for i in range(n_per_label):
                files[f"aclImdb/{split}/{label}/{i}_{rating}.txt"] = f"{texts[i % 3]}<br /><br />review {i}"
    files["aclImdb/README"] = "Large Movie Review Dataset"
    files["aclImdb/train/unsup/0_0.txt"] = "unlabeled, ignored"
    return files


@pytest.fixture
def imdb_archive(tmp_path) -> Path:
    path = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in imdb_reviews().items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def imdb_folder(tmp_path) -> Path:
    root = tmp_path / "extracted"
    for name, text in imdb_reviews().items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root / "aclImdb"


@pytest.fixture
def text_csvs(tmp_path) -> tuple[Path, Path]:
    """Three-class text data with string labels, as train and test CSVs."""
    rows = []
    words = {"sports": "match goal team score win league", "politics": "vote election party minister law",
             "food": "recipe cook taste dinner bake spice"}
    for i in range(60):
        label = list(words)[i % 3]
        vocab = words[label].split()
        rows.append({"text": " ".join(vocab[(i + k) % len(vocab)] for k in range(4)), "label": label})
    frame = pd.DataFrame(rows)
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    frame.iloc[:45].to_csv(train, index=False)
    frame.iloc[45:].to_csv(test, index=False)
    return train, test


# small trained runs to export, quantize and serve (generated data, seconds each)

@pytest.fixture
def digits_run(tmp_path):
    return honed.train({"name": "digits_mlp", "data": {"source": "sklearn", "name": "digits"},
                        "model": {"name": "mlp", "hidden": [256, 128]}, "optimizer": {"lr": 0.01},
                        "train": {"epochs": 4, "batch_size": 64, "checkpoint": None}}, out=tmp_path / "digits").path


@pytest.fixture
def text_run(tmp_path, text_csvs):
    train, test = text_csvs
    return honed.train({"name": "topics", "data": {"source": "text_files", "train": str(train), "test": str(test),
                                                   "ngrams": 2, "ngram_buckets": 5000},
                        "model": {"name": "bag", "hidden": [16]}, "optimizer": {"lr": 0.05},
                        "train": {"epochs": 5, "batch_size": 8, "checkpoint": None}}, out=tmp_path / "text").path


@pytest.fixture
def regression_run(tmp_path):
    return honed.train({"name": "lin", "data": {"source": "synthetic_regression", "n": 300},
                        "model": {"name": "linear"}, "optimizer": {"name": "gd", "lr": 0.1},
                        "train": {"epochs": 50, "checkpoint": None}}, out=tmp_path / "lin").path


KILLER = """
import json, os, signal, sys
import honed
from honed.training import Hook

class Kill(Hook):
    def on_step_end(self, trainer, loss):
        if trainer.step == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)

honed.train(json.loads(sys.argv[1]), out=sys.argv[2], hooks=[Kill()])
"""


@pytest.fixture
def killed_at_step():
    """Train `recipe` into `out` in a child process that SIGKILLs itself after optimizer step `step`."""
    import json
    import subprocess
    import sys

    def kill(recipe: dict, out: Path, step: int) -> Path:
        done = subprocess.run([sys.executable, "-c", KILLER, json.dumps(recipe), str(out), str(step)],
                              capture_output=True, text=True)
        assert done.returncode == -9, done.stderr  # really SIGKILLed
        return out

    return kill


SMALL_BERT_LAYERS, SMALL_BERT_HIDDEN = 3, 32


@pytest.fixture(scope="session")
def small_bert(tmp_path_factory) -> Path:
    """A small BERT (3 layers, hidden 32, 2 heads, feed-forward 64) in Hugging Face layout, random weights: stands
    in for a large pretrained encoder (a local folder must work exactly as the bundled one does)."""
    transformers = pytest.importorskip("transformers")
    from honed.pretrained import encoder_folder

    folder = tmp_path_factory.mktemp("small_bert")
    config = transformers.BertConfig(vocab_size=30522, hidden_size=SMALL_BERT_HIDDEN,
                                     num_hidden_layers=SMALL_BERT_LAYERS, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    shutil.copy(encoder_folder("all-minilm-l6-v2") / "tokenizer.json", folder / "tokenizer.json")
    return folder


@pytest.fixture
def small_bert_recipe(text_csvs, small_bert):
    """A recipe fine-tuning the small BERT on the text_csvs files: model keys (e.g. an adapter) and train keys on
    top."""
    train_csv, test_csv = text_csvs

    def recipe(model: dict | None = None, **train) -> dict:
        return {"name": "small-bert", "seed": 1,
                "data": {"source": "text_files", "train": str(train_csv), "test": str(test_csv),
                         "tokenizer": "pretrained", "pretrained": str(small_bert), "max_len": 16},
                "model": {"name": "transformer", "dropout": 0.1} | (model or {}),
                "optimizer": {"name": "adamw", "lr": 5e-3},
                "train": {"epochs": 3, "batch_size": 8, "checkpoint": None} | train}

    return recipe
