"""Sentence vectors beside the tokens (data.encoder_features): the vectors themselves, their caches, the
batches that carry them, the models that read them, and the search's rule for when they pay."""

import numpy as np
import pytest
import torch

import honed
from honed.data.bundle import trim_padding
from honed.data.tokens import TextBatch, TokenRows
from honed.errors import UserError

pytest.importorskip("transformers")

TEXTS = ["a wonderful film", "vote for the party in the election", "", "bake the bread " * 40, "goal!"]


def one_at_a_time(texts: list[str]) -> np.ndarray:
    """The model card's recipe, text by text (no padding at all): mean of the final states, unit length."""
    from tokenizers import Tokenizer
    from transformers import AutoModel

    from honed.pretrained import encoder_folder

    folder = encoder_folder("all-minilm-l6-v2")
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(128)
    model = AutoModel.from_pretrained(str(folder)).eval()
    out = []
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([tok.encode(text).ids])
            states = model(input_ids=ids).last_hidden_state[0]
            out.append(torch.nn.functional.normalize(states.mean(dim=0), dim=0).numpy())
    return np.stack(out)


def test_batched_vectors_equal_the_model_cards_recipe_text_by_text():
    from honed.data.embed import SentenceEncoder

    vectors = SentenceEncoder("all-minilm-l6-v2").vectors(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(vectors, one_at_a_time(TEXTS), atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_remembered_vectors_come_back_from_memory_then_disk_without_encoding(monkeypatch):
    from honed.data import embed

    encoder = embed.SentenceEncoder("all-minilm-l6-v2")
    first = encoder.vectors(TEXTS[:3], remember=True)
    monkeypatch.setattr(embed.SentenceEncoder, "encode", lambda self, texts: pytest.fail(f"encoded {texts}"))
    again = encoder.vectors(TEXTS[1:3], remember=True)  # a subset: from memory, text by text
    np.testing.assert_array_equal(again, first[1:3])
    embed._memo.clear()
    np.testing.assert_array_equal(encoder.vectors(TEXTS[:3], remember=True), first)  # the same list: from disk


def test_rows_with_vectors_hand_out_batches_that_keep_each_texts_vector():
    rows = TokenRows.from_lists([[5, 6, 7], [8], [9, 10]]).with_features(torch.arange(6.0).reshape(3, 2))
    batch = rows[[2, 0]]
    assert isinstance(batch, TextBatch)
    assert batch.ids.tolist() == [[9, 10, 0], [5, 6, 7]] and batch.features.tolist() == [[4, 5], [0, 1]]
    trimmed = trim_padding(rows[[1, 2]])
    assert trimmed.ids.tolist() == [[8, 0], [9, 10]] and trimmed.features.tolist() == [[2, 3], [4, 5]]
    with pytest.raises(ValueError, match="2 sentence vectors for 3 texts"):
        TokenRows.from_lists([[1], [2], [3]]).with_features(torch.zeros(2, 2))


def test_a_linear_model_scores_tfidf_words_plus_a_weight_on_each_vector_dimension():
    from honed.models.linear import TextLinear

    torch.manual_seed(0)
    model = TextLinear(20, 3, "tfidf", features_dim=4)
    torch.nn.init.normal_(model.pool.embedding.weight)
    ids, vectors = torch.tensor([[3, 4, 0], [5, 0, 0]]), torch.randn(2, 4)
    weights = model.pool.token_weights(ids)
    expected = torch.stack([(weights[i, :, None] * model.pool.embedding.weight[ids[i]]).sum(0) for i in range(2)])
    expected = expected + vectors @ model.sentence.weight.T + model.bias
    with torch.no_grad():
        torch.testing.assert_close(model(TextBatch(ids, vectors)), expected)
        padded = TextBatch(torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], dim=1), vectors)
        torch.testing.assert_close(model(padded), expected)


def recipe(text_csvs, **data):
    train, test = text_csvs
    return {"name": "vectors", "data": {"source": "text_files", "train": str(train), "test": str(test),
                                        "val_fraction": 0, "encoder_features": "all-minilm-l6-v2"} | data,
            "model": {"name": "logistic", "pooling": "tfidf", "embedding_init": "zeros"},
            "optimizer": {"name": "lbfgs", "lr": 1.0}, "train": {"epochs": 5, "checkpoint": None}}


def test_a_run_with_vectors_trains_reloads_and_predicts_raw_texts_as_it_scored_them(text_csvs, tmp_path):
    run = honed.train(recipe(text_csvs), out=tmp_path / "run")
    assert run.summary["test"]["accuracy"] == 1.0
    _, model, pre = honed.load_run(run.path)
    assert pre.features_dim == 384 and model.sentence.weight.shape == (3, 384)
    texts = ["the team scored a late goal", "bake the bread for dinner", "vote for the minister"]
    frame = honed.predict(run.path, texts)
    assert list(frame["prediction"]) == ["sports", "food", "politics"]
    from honed.export import TorchPredictor  # what honed serve answers with

    assert [r["prediction"] for r in TorchPredictor(run.path).predict(texts)] == ["sports", "food", "politics"]
    with torch.no_grad():  # the same scores as the trained model on the same texts prepared for training
        torch.testing.assert_close(model(pre.inputs(texts)[:]), run.model.eval()(pre.inputs(texts)[:]))


def test_models_that_cannot_read_vectors_and_bundles_that_cannot_carry_them_say_so(text_csvs, tmp_path):
    with pytest.raises(UserError, match="data.encoder_features is read by models linear, logistic, bag"):
        honed.train(recipe(text_csvs) | {"model": {"name": "rnn"}, "optimizer": {"name": "adam"}}, out=tmp_path / "r")
    run = honed.train(recipe(text_csvs), out=tmp_path / "run")
    from honed.export import export_onnx

    with pytest.raises(UserError, match="bundles do not carry"):
        export_onnx(run.path)


def test_the_search_keeps_the_encoder_only_when_its_vectors_fit_half_of_the_budget(text_csvs, monkeypatch):
    from honed.data import embed
    from honed.recipe import load_recipe
    from honed.recipe.schema import Domain
    from honed.tuning.space import affordable

    base = load_recipe(recipe(text_csvs, encoder_features=None))
    space = {"data.encoder_features": Domain(choice=[None, "all-minilm-l6-v2"]), "regularization.c": Domain(
        loguniform=(1, 100))}
    monkeypatch.setattr(embed, "measured_seconds", lambda name, texts: 10.0 + len(texts))
    assert affordable(base, space, budget=1000) == space
    assert list(affordable(base, space, budget=100)) == ["regularization.c"]  # 10 s + 60 texts > half of 100
    assert affordable(base, space, budget=150) == space  # 70 s: under half of 150
    monkeypatch.setattr(embed, "unavailable", lambda name: "pip install 'honed[transformer]'")
    assert list(affordable(base, space, budget=1000)) == ["regularization.c"]


def test_a_bag_reads_the_vector_beside_its_pooled_tokens_whatever_the_padding():
    from honed.models.bag import BagOfEmbeddings

    torch.manual_seed(0)
    model = BagOfEmbeddings(20, 8, [6], "relu", 0.0, 1, features_dim=4).eval()
    ids, vectors = torch.tensor([[3, 4, 0], [5, 0, 0]]), torch.randn(2, 4)
    with torch.no_grad():
        out = model(TextBatch(ids, vectors))
        other = model(TextBatch(ids, torch.randn(2, 4)))
        padded = model(TextBatch(torch.cat([ids, torch.zeros(2, 5, dtype=torch.long)], dim=1), vectors))
    assert out.shape == (2,) and not torch.allclose(out, other)  # the vector counts
    torch.testing.assert_close(out, padded)


def test_the_encoders_cost_is_measured_on_a_sample_of_the_texts(monkeypatch):
    """Loading timed, pieces counted by the tokenizer, the rate timed on a sample: on a clock that the fake
    encoder advances by 2 s to load and 1 ms per word piece it computes (padding included: texts batched by
    length as the encoder batches them), the estimate is exactly 2 s + 1 ms x all the texts' padded pieces."""
    from types import SimpleNamespace

    from honed.data import embed

    clock = [0.0]
    pieces = lambda text: len(text.split()) + 2  # noqa: E731
    tokenizer = SimpleNamespace(encode_batch=lambda texts: [SimpleNamespace(ids=[0] * pieces(t)) for t in texts])

    def load(self):
        clock[0] += 2.0
        return tokenizer, None

    def encode(self, texts):
        clock[0] += 0.001 * embed.padded_pieces([pieces(t) for t in texts])
        return np.zeros((len(texts), 4), np.float32)

    monkeypatch.setattr(embed.SentenceEncoder, "load", load)
    monkeypatch.setattr(embed.SentenceEncoder, "encode", encode)
    monkeypatch.setattr(embed.time, "perf_counter", lambda: clock[0])
    texts = [" ".join(["word"] * (1 + i % 37)) for i in range(500)]
    expected = 2.0 + 0.001 * embed.padded_pieces([pieces(t) for t in texts])
    assert embed.padded_pieces([3, 5, 4]) == 15  # one batch, padded to 5 pieces
    assert embed.measured_seconds("all-minilm-l6-v2", texts) == pytest.approx(expected, rel=1e-9)


def tiny_static(dim: int = 8):
    """A StaticModel on all-MiniLM-L6-v2's own word pieces with seeded random rows (what distillation would
    produce, without the minute it takes)."""
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    from honed.pretrained import encoder_folder

    tokenizer = Tokenizer.from_file(str(encoder_folder("all-minilm-l6-v2") / "tokenizer.json"))
    rows = np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), dim)).astype(np.float32)
    return StaticModel(vectors=rows, tokenizer=tokenizer)


def test_static_vectors_are_the_unit_mean_of_their_pieces_rows_distilled_once_per_machine(monkeypatch, tmp_path):
    """data.encoder_features = all-minilm-l6-v2-static: each text's vector is the mean of its word pieces' rows
    (no [CLS]/[SEP]), unit length; the static model is distilled on first use into the cache folder and read
    from there afterwards, never distilled again."""
    pytest.importorskip("model2vec")
    from tokenizers import Tokenizer

    from honed.data import embed
    from honed.pretrained import encoder_folder

    monkeypatch.setenv("HONED_CACHE", str(tmp_path))
    monkeypatch.setattr(embed, "_loaded", {})
    distilled = []
    monkeypatch.setattr(embed, "distilled", lambda base: distilled.append(base) or tiny_static())
    texts = ["A gripping film, not boring!", "", "naïve plot twists"]
    vectors = embed.encoder_of("all-minilm-l6-v2-static").vectors(texts)
    tokenizer = Tokenizer.from_file(str(encoder_folder("all-minilm-l6-v2") / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128 pieces
    rows = tiny_static().embedding
    for text, vector in zip(texts, vectors):
        pieces = tokenizer.encode(text, add_special_tokens=False).ids
        mean = rows[pieces].mean(axis=0) if pieces else np.zeros(rows.shape[1], np.float32)
        expected = mean / max(np.linalg.norm(mean), 1e-12)
        np.testing.assert_allclose(vector, expected, atol=1e-6)
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0) and not vectors[1].any()  # an empty text: zeros
    monkeypatch.setattr(embed, "_loaded", {})  # a new process: the model comes from the cache folder
    again = embed.encoder_of("all-minilm-l6-v2-static").vectors(texts)
    np.testing.assert_allclose(again, vectors, atol=1e-6)
    assert distilled == ["all-minilm-l6-v2"] and list((tmp_path / "static_encoders").iterdir())


def test_a_damaged_static_model_is_distilled_again_whole(monkeypatch, tmp_path):
    pytest.importorskip("model2vec")
    from honed.data import embed

    monkeypatch.setenv("HONED_CACHE", str(tmp_path))
    monkeypatch.setattr(embed, "_loaded", {})
    folder = embed.static_folder("all-minilm-l6-v2")
    folder.mkdir(parents=True)
    (folder / embed.STATIC_WEIGHTS).write_bytes(b"not safetensors")
    distilled = []
    monkeypatch.setattr(embed, "distilled", lambda base: distilled.append(base) or tiny_static())
    vectors = embed.encoder_of("all-minilm-l6-v2-static").vectors(["a gripping film"])
    assert distilled == ["all-minilm-l6-v2"] and vectors.shape == (1, 8)
    other = embed.encoder_of("all-minilm-l6-v2-static")
    other.made_by = "model2vec, 128 components"  # vectors of another distillation never come from this one's cache
    assert other.cache_path(["x"]) != embed.encoder_of("all-minilm-l6-v2-static").cache_path(["x"])


def test_a_static_encoder_not_yet_distilled_is_costed_without_distilling(monkeypatch, tmp_path):
    from honed.data import embed

    monkeypatch.setenv("HONED_CACHE", str(tmp_path))
    monkeypatch.setattr(embed, "distilled", lambda base: pytest.fail("distilled while estimating"))
    seconds = embed.measured_seconds("all-minilm-l6-v2-static", ["a text"] * 5000)
    assert seconds == pytest.approx(embed.DISTILL_SECONDS + 5000 / embed.STATIC_TEXTS_PER_SECOND)


def test_the_search_keeps_a_cheap_static_encoder_where_the_transformer_would_not_fit(text_csvs, monkeypatch):
    from honed.data import embed
    from honed.recipe import load_recipe
    from honed.recipe.schema import Domain
    from honed.tuning.space import affordable

    base = load_recipe(recipe(text_csvs, encoder_features=None))
    choice = [None, "all-minilm-l6-v2", "all-minilm-l6-v2-static"]
    space = {"data.encoder_features": Domain(choice=choice)}
    monkeypatch.setattr(embed, "unavailable", lambda name: None)
    monkeypatch.setattr(embed, "estimated_seconds", lambda texts: 10_000.0)  # far over: the transformer unmeasured
    monkeypatch.setattr(embed, "measured_seconds", lambda name, texts: 5.0 if embed.is_static(name) else 1e6)
    assert affordable(base, space, budget=120)["data.encoder_features"].choice == [None, "all-minilm-l6-v2-static"]


def test_int8_vectors_stay_near_the_float_ones_and_the_quantized_file_is_made_once(monkeypatch, tmp_path):
    """data.encoder_features = all-minilm-l6-v2-int8: the same encoder and pooling on ONNX Runtime with 8-bit
    weights; vectors unit length and within cosine 0.95 of the model card's float ones; exported and quantized on
    first use into the cache folder, read from there afterwards (no export, no transformers model)."""
    pytest.importorskip("onnxruntime")
    from honed.data import embed

    monkeypatch.setenv("HONED_CACHE", str(tmp_path))
    monkeypatch.setattr(embed, "_loaded", {})
    embed.SentenceEncoder("all-minilm-l6-v2").vectors(TEXTS[:1])  # the float model loaded while encoding: its
    embed.int8_model("all-minilm-l6-v2")  # weights are inference tensors, exported with gradients off (a search's
    vectors = embed.encoder_of("all-minilm-l6-v2-int8").vectors(TEXTS)  # estimate quantizes outside encoding)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * one_at_a_time(TEXTS)).sum(axis=1)
    assert cosine.min() > 0.95 and cosine.max() < 0.99999  # near, and really quantized
    monkeypatch.setattr(embed, "_loaded", {})  # a new process: the file comes from the cache folder
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: pytest.fail("exported again"))
    monkeypatch.setattr(embed.SentenceEncoder, "load", lambda self: pytest.fail("loaded the float model"))
    np.testing.assert_array_equal(embed.encoder_of("all-minilm-l6-v2-int8").vectors(TEXTS), vectors)
    assert embed.encoder_of("all-minilm-l6-v2-int8").cache_path(["x"]) != embed.encoder_of(
        "all-minilm-l6-v2").cache_path(["x"])  # their vectors differ: so do their cache entries


def test_the_search_measures_the_int8_encoder_where_the_float_one_is_far_over(text_csvs, monkeypatch):
    from honed.data import embed
    from honed.recipe import load_recipe
    from honed.recipe.schema import Domain
    from honed.tuning.space import affordable

    base = load_recipe(recipe(text_csvs, encoder_features=None))
    space = {"data.encoder_features": Domain(choice=[None, "all-minilm-l6-v2", "all-minilm-l6-v2-int8"])}
    monkeypatch.setattr(embed, "unavailable", lambda name: None)
    monkeypatch.setattr(embed, "estimated_seconds", lambda texts: 200.0)  # float: 205 s, over 3 x 40: not measured
    monkeypatch.setattr(embed, "measured_seconds",  # int8: 85 s guessed, under 120: measured
                        lambda name, texts: 30.0 if embed.is_int8(name) else pytest.fail(f"measured {name}"))
    assert affordable(base, space, budget=120)["data.encoder_features"].choice == [None, "all-minilm-l6-v2-int8"]
