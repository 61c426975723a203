"""Logistic regression on TF-IDF text features, checked against scikit-learn on the same texts:
honed's words tokenizer + TF-IDF pooling + L-BFGS with regularization.c is TfidfVectorizer +
LogisticRegression(C) — same features, same objective, so the same probabilities."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch

import honed
from honed.data.words import TextSettings, text_ids, word_char_ngrams, words_of
from honed.models import Shape, build_model
from honed.recipe import load_recipe

WORDS = "good great fine superb bad awful poor dull film plot cast story it's not very".split()


def labelled_texts(n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 9))]
        score = sum(w in ("good", "great", "fine", "superb") for w in words) - sum(
            w in ("bad", "awful", "poor", "dull") for w in words)
        label = "pos" if score + rng.gauss(0, 0.7) > 0 else "neg"
        rows.append((" ".join(words), label))
    return pd.DataFrame(rows, columns=["text", "label"])


def test_tfidf_logistic_regression_equals_scikit_learn(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train = labelled_texts(300, 0)
    train.to_csv(tmp_path / "train.csv", index=False)
    labelled_texts(50, 1).to_csv(tmp_path / "test.csv", index=False)
    recipe = {"name": "lr", "data": {"source": "text_files", "train": str(tmp_path / "train.csv"),
                                     "test": str(tmp_path / "test.csv"), "num_words": 100, "unique_tokens": True,
                                     "val_fraction": 0.0},
              "model": {"name": "logistic", "pooling": "tfidf", "embedding_init": "zeros"},
              "optimizer": {"name": "lbfgs", "lr": 1.0}, "regularization": {"c": 2.0},
              "train": {"epochs": 30, "batch_size": 1000, "convergence_tol": 1e-9, "checkpoint": None}}
    run = honed.train(recipe, out=tmp_path / "run")
    ours = honed.predict(run.path, train["text"].tolist())["prob_pos"].to_numpy()

    features = TfidfVectorizer(tokenizer=lambda t: words_of(t, True), lowercase=False, binary=True, token_pattern=None)
    x = features.fit_transform(train["text"])
    reference = LogisticRegression(C=2.0, tol=1e-10, max_iter=10_000).fit(x, train["label"])
    expected = reference.predict_proba(x)[:, list(reference.classes_).index("pos")]
    np.testing.assert_allclose(ours, expected, atol=2e-3)


def test_tfidf_pooling_weighs_by_idf_with_unit_norm_and_exports_the_same():
    """Both pooling paths (sparse products for training, a gather for export) against the formula."""
    spec = load_recipe({"model": {"name": "bag", "pooling": "tfidf", "hidden": []}}).model
    model = build_model(spec, Shape("tokens", 12, 1))
    frequency = torch.tensor([0, 0, 5, 1, 3, 2, 4, 1, 1, 2, 6, 1])
    from honed.models.layers import set_document_frequency

    set_document_frequency(model, frequency, 6)
    idf = torch.log(torch.tensor(7.0) / (1 + frequency.double())).float() + 1
    x = torch.tensor([[2, 5, 9, 0], [3, 0, 0, 0], [4, 6, 7, 11]])
    table = model.embedding.weight.detach()
    expected = []
    for row in x:
        ids = row[row != 0]
        w = idf[ids] / idf[ids].norm()
        expected.append((table[ids] * w.unsqueeze(1)).sum(0))
    with torch.no_grad():
        torch.testing.assert_close(model.pool(x), torch.stack(expected))
        torch.testing.assert_close(model.pool.gathered(x), torch.stack(expected))
        padded = torch.cat([x, torch.zeros(3, 5, dtype=torch.long)], dim=1)
        torch.testing.assert_close(model.pool(padded), torch.stack(expected))


def test_tfidf_gradients_match_autograd_of_the_dense_product():
    """The sparse product's hand-written backward (X^T @ G) against autograd on a dense X."""
    from honed.models.layers import TokenPool

    torch.manual_seed(0)
    pool = TokenPool(20, 3, "tfidf")
    pool.set_document_frequency(torch.randint(0, 9, (20,)), 10)
    x = torch.tensor([[3, 7, 19, 0], [1, 2, 0, 0], [5, 5, 6, 8]])
    grad = torch.randn(3, 3)
    (pool(x) * grad).sum().backward()
    weights = pool.token_weights(x)
    dense = torch.zeros(3, 20).index_put_((torch.arange(3).repeat_interleave(4), x.flatten()), weights.flatten(),
                                          accumulate=True)
    table = pool.embedding.weight.detach().clone().requires_grad_(True)
    (dense @ table * grad).sum().backward()
    torch.testing.assert_close(pool.embedding.weight.grad, table.grad)


def char_reference(word: str, lo: int, hi: int) -> list[str]:
    padded = f" {word} "
    return [padded[i: i + n] for n in range(lo, hi + 1) for i in range(len(padded) - n + 1)]


@pytest.mark.parametrize("unique", [False, True])
def test_character_ngrams_follow_scikit_learns_char_wb(unique):
    """The vectorized path gives each word's padded character n-grams (sklearn's char_wb analyzer), hashed."""
    from sklearn.feature_extraction.text import CountVectorizer

    from honed.data.words import bucket_ids

    text = "Great plot, great CAST"
    settings = TextSettings(num_words=10, max_len=20, buckets=997, char_ngrams=(2, 4), unique=unique)
    index = {"<pad>": 0, "<unk>": 1, "great": 2, "plot": 3}
    ids = text_ids(text, index, settings)
    words = words_of(text, True)
    grams = [g for w in words for g in char_reference(w, 2, 4)]
    assert sorted(set(grams)) == sorted(CountVectorizer(analyzer="char_wb", ngram_range=(2, 4)).fit([
        " ".join(words)]).vocabulary_)
    hashed = bucket_ids(np.array([h for w in words for h in word_char_ngrams(w, 2, 4)], dtype=np.uint64), 997,
                        len(index)).tolist()
    assert len(hashed) == len(grams)
    word_ids = [index.get(w, 1) for w in words]
    expected = sorted(set(word_ids + hashed)) if unique else word_ids + hashed
    assert ids == expected


def test_character_ngrams_auto_follow_text_length(tmp_path, caplog):
    import logging

    from honed.data.rules import text_settings

    caplog.set_level(logging.INFO, logger="honed")
    spec = load_recipe({"data": {"source": "text_files", "char_ngrams": "auto", "ngrams": "auto",
                                 "unique_tokens": True}}).data
    short = text_settings(spec, ["a short text"] * 10)
    assert (short.char_ngrams, short.ngrams) == ((2, 5), 3)
    assert "median 3 words (short: up to 50): character n-grams 2-5 on, word n-grams up to 3 (auto)" in caplog.text
    long = text_settings(spec, [" ".join(["word"] * 80)] * 10)
    assert (long.char_ngrams, long.ngrams) == (None, 2)
