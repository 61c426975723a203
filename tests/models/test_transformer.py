"""The pretrained Transformer: fine-tuning all-MiniLM-L6-v2 offline, padding invariance, reloading, as a teacher."""

import pytest
import torch

import honed
from honed.errors import UserError
from honed.tuning import distill

pytest.importorskip("transformers")


def minilm(text_csvs, **train):
    train_csv, test_csv = text_csvs
    return {"name": "minilm", "data": {"source": "text_files", "train": str(train_csv), "test": str(test_csv),
                                       "tokenizer": "pretrained", "pretrained": "all-minilm-l6-v2", "max_len": 32},
            "model": {"name": "transformer", "dropout": 0.1}, "optimizer": {"name": "adamw", "lr": 5e-5},
            "train": {"epochs": 3, "batch_size": 8, "checkpoint": None} | train}


def test_fine_tuning_the_bundled_encoder_learns_the_task_offline(text_csvs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = honed.train(minilm(text_csvs), out=tmp_path / "run")
    losses = [r["train_loss"] for r in honed.run.read_metrics(run.path)]
    assert losses[-1] < losses[0] / 2
    assert run.summary["params"] > 22_000_000 and run.summary["test"]["accuracy"] >= 0.9
    frame = honed.predict(run.path, ["the team scored a late goal", "bake the bread for dinner"])
    assert list(frame["prediction"]) == ["sports", "food"]


def test_padding_never_changes_an_output_and_the_run_reloads(text_csvs, tmp_path):
    run = honed.train(minilm(text_csvs, epochs=1), out=tmp_path / "run")
    _, model, pre = honed.load_run(run.path)
    x = pre.inputs(["vote for the party", "a long match with a goal and a win for the team"])[:]
    padded = torch.cat([x, torch.zeros(2, 9, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(x), run.model.eval()(x), atol=1e-5, rtol=1e-5)


def test_the_fine_tuned_encoder_exports_to_onnx_with_its_tokenizer(text_csvs, tmp_path):
    from honed.export import OnnxPredictor, TorchPredictor, export_onnx

    run = honed.train(minilm(text_csvs, epochs=1), out=tmp_path / "run").path
    info = export_onnx(run)
    assert info["check"]["max_abs_difference"] <= 1e-4 and (run / "onnx" / "tokenizer.json").is_file()
    texts = ["the team scored a late goal in the match", "vote", "bake the bread and cook the spice for dinner"]
    onnx, torch_ = OnnxPredictor(run / "onnx").predict(texts), TorchPredictor(run).predict(texts)
    for a, b in zip(onnx, torch_):
        assert a["prediction"] == b["prediction"]
        for label, p in a["probabilities"].items():
            assert p == pytest.approx(b["probabilities"][label], abs=1e-5)


def test_a_transformer_teaches_a_bag_student(text_csvs, tmp_path):
    teacher = honed.train(minilm(text_csvs), out=tmp_path / "teacher").path
    train_csv, test_csv = text_csvs
    student = {"name": "student", "data": {"source": "text_files", "train": str(train_csv), "test": str(test_csv)},
               "model": {"name": "bag", "embedding_dim": 8}, "optimizer": {"lr": 0.05},
               "train": {"epochs": 4, "batch_size": 8, "checkpoint": None}}
    report = distill(teacher, student, temperature=2.0, alpha=0.5, out=tmp_path / "d")
    teacher_row, distilled, alone = report["rows"]
    assert teacher_row["model"] == "teacher (transformer)" and report["teacher_passes"] == 1
    assert distilled["params"] < teacher_row["params"] / 1000


def test_the_transformer_needs_its_tokenizer():
    with pytest.raises(UserError, match="data.tokenizer = pretrained"):
        honed.load_recipe({"model": {"name": "transformer"}})
    with pytest.raises(UserError, match="go together"):
        honed.load_recipe({"data": {"source": "text_files", "tokenizer": "pretrained"}})


def test_a_fine_tuned_encoder_is_explained_word_by_word_completely(text_csvs, tmp_path):
    pytest.importorskip("captum")
    run = honed.train(minilm(text_csvs, epochs=1), out=tmp_path / "run")
    result = honed.explain(run.path, ["the footballers scored a late goal"])
    item = result.items[0]
    assert item["names"] == ["the", "footballers", "scored", "a", "late", "goal"]  # pieces joined, no [CLS]/[SEP]
    assert item["completeness_gap"] <= 0.05  # from the encoder's own [PAD] embedding, as Captum integrates
