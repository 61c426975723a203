"""ONNX export: dynamic axes, outputs equal to PyTorch's on new inputs, a bundle that carries its preprocessing."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

import honed
from honed.errors import UserError
from honed.export import OnnxPredictor, TorchPredictor, export_onnx


@pytest.mark.parametrize("fixture", ["digits_run", "text_run", "regression_run"])
def test_export_matches_pytorch_on_other_batch_sizes_and_lengths(fixture, request):
    run = request.getfixturevalue(fixture)
    info = export_onnx(run)
    folder = run / "onnx"
    for name in ("model.onnx", "bundle.json", "preprocess.json"):
        assert (folder / name).is_file(), name
    bundle = json.loads((folder / "bundle.json").read_text())
    assert bundle["check"]["max_abs_difference"] <= 1e-4 and bundle["check"]["rows"] > 0
    assert info["task"] == bundle["task"]
    _, model, pre = honed.load_run(run)
    session = ort.InferenceSession(str(folder / "model.onnx"))
    gen = torch.Generator().manual_seed(0)
    for batch, length in ((1, 3), (7, 11), (33, 40)):
        if pre.kind == "text":
            x = torch.randint(1, pre.input_dim, (batch, length), generator=gen)
            x[0, length // 2:] = 0  # right padding inside the batch
        else:
            x = torch.randn(batch, pre.input_dim, generator=gen)
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            np.testing.assert_allclose(got, model(x).numpy(), atol=1e-4)


def test_the_bundle_alone_predicts_like_the_run(text_run):
    export_onnx(text_run)
    texts = ["match goal team score", "vote election party law", "recipe cook taste bake", "unknown words here"]
    onnx = OnnxPredictor(text_run / "onnx").predict(texts)
    torch_ = TorchPredictor(text_run).predict(texts)
    assert [p["prediction"] for p in onnx] == [p["prediction"] for p in torch_]
    for a, b in zip(onnx, torch_):
        assert sum(a["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        for label in a["probabilities"]:
            assert a["probabilities"][label] == pytest.approx(b["probabilities"][label], abs=1e-5)
    labels = json.loads((text_run / "onnx" / "bundle.json").read_text())["labels"]
    assert sorted(labels) == ["food", "politics", "sports"]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_models_export_without_packed_sequences(tmp_path, text_csvs, cell):
    train, test = text_csvs
    run = honed.train({"data": {"source": "text_files", "train": str(train), "test": str(test)},
                       "model": {"name": "rnn", "cell": cell, "hidden_size": 8, "layers": 2},
                       "train": {"epochs": 1, "checkpoint": None}}, out=tmp_path / "rnn").path
    export_onnx(run)
    _, model, pre = honed.load_run(run)
    session = ort.InferenceSession(str(run / "onnx" / "model.onnx"))
    x = torch.randint(1, pre.input_dim, (5, 9), generator=torch.Generator().manual_seed(1))
    x[1, 3:], x[4, 1:] = 0, 0  # texts of different lengths, right-padded
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], model(x).numpy(), atol=1e-4)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_export_path_equals_packed_sequences(cell, bidirectional):
    from honed.models.rnn import RNNClassifier

    torch.manual_seed(0)
    model = RNNClassifier(50, 6, cell, 5, layers=3, bidirectional=bidirectional, dropout=0.3, n_out=2).eval()
    x = torch.randint(1, 50, (6, 12))
    for row, length in enumerate((12, 1, 5, 7, 2, 11)):
        x[row, length:] = 0
    with torch.no_grad():
        packed = model(x)
        unpacked = model.head(model.last_real_state(x))
    torch.testing.assert_close(unpacked, packed, atol=1e-5, rtol=1e-5)


def test_a_bidirectional_rnn_exports(tmp_path, text_csvs):
    train, test = text_csvs
    run = honed.train({"data": {"source": "text_files", "train": str(train), "test": str(test)},
                       "model": {"name": "rnn", "hidden_size": 8, "bidirectional": True, "layers": 2},
                       "train": {"epochs": 1, "checkpoint": None}}, out=tmp_path / "rnn").path
    assert export_onnx(run)["check"]["max_abs_difference"] <= 1e-4
    _, model, pre = honed.load_run(run)
    session = ort.InferenceSession(str(run / "onnx" / "model.onnx"))
    x = torch.randint(1, pre.input_dim, (5, 9), generator=torch.Generator().manual_seed(1))
    x[1, 3:], x[4, 1:] = 0, 0
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], model(x).numpy(), atol=1e-4)


class SizeDependent(torch.nn.Module):
    def forward(self, x):
        return x if x.shape[0] == 2 else 2 * x  # a branch on the batch size: the exporter keeps the example's


class Unsupported(torch.nn.Module):
    def forward(self, x):
        if torch.compiler.is_exporting():
            raise RuntimeError("no ONNX form for this operator")
        return x


def test_a_model_the_exporter_cannot_take_is_a_clear_error(tmp_path):
    from honed.export.onnx import max_difference, write_onnx

    with pytest.raises(UserError, match="cannot be exported to ONNX yet .Unsupported: no ONNX form"):
        write_onnx(Unsupported(), torch.ones(2, 3), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    write_onnx(SizeDependent(), torch.ones(2, 3), tmp_path / "fixed.onnx")  # exported, but for batches of 2 only
    session = ort.InferenceSession(str(tmp_path / "fixed.onnx"))
    assert max_difference(session, SizeDependent(), torch.randn(2, 3)) == float("inf")


def test_a_bundle_is_replaced_whole_and_leftovers_of_a_killed_export_are_not_shipped(regression_run):
    """A killed export or quantize leaves a temp file or a half-built folder; the next export ships neither."""
    from pathlib import Path

    first = Path(export_onnx(regression_run).path)
    (first / ".model.int8.onnx.k3x9").write_bytes(b"")  # what SIGKILL during quantize's write leaves
    abandoned = regression_run / ".building-999999999-x"  # a killed export's folder (no such process)
    abandoned.mkdir()
    again = Path(export_onnx(regression_run).path)
    assert again == first and sorted(p.name for p in again.iterdir() if p.name.startswith(".")) == []
    assert not abandoned.exists()
    assert json.loads((again / "bundle.json").read_text())["check"]["max_abs_difference"] < 1e-4
