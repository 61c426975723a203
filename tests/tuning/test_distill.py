"""Distillation: the loss against a hand-written reference, the teacher run once, the ablation report."""

import json

import pytest
import torch
import torch.nn.functional as F

import honed
from honed.errors import UserError
from honed.training.distill import DistillationLoss, Teacher
from honed.tuning import distill


def test_multiclass_loss_matches_the_formula():
    torch.manual_seed(0)
    s, t, labels = torch.randn(5, 3), torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    T, alpha = 3.0, 0.7
    loss = DistillationLoss(torch.nn.CrossEntropyLoss(), "multiclass", T, alpha)
    targets = torch.cat([labels.float().unsqueeze(1), t], dim=1)
    p, log_q = F.softmax(t / T, dim=1), F.log_softmax(s / T, dim=1)
    kl = (p * (p.log() - log_q)).sum(dim=1).mean()
    expected = (1 - alpha) * F.cross_entropy(s, labels) + alpha * T * T * kl
    assert float(loss(s, targets)) == pytest.approx(float(expected), rel=1e-5)
    assert float(DistillationLoss(torch.nn.CrossEntropyLoss(), "multiclass", T, 0.0)(s, targets)) == pytest.approx(
        float(F.cross_entropy(s, labels)), rel=1e-6)
    assert float(loss(s, labels)) == pytest.approx(float(F.cross_entropy(s, labels)))  # validation: labels only


def test_binary_loss_is_the_bernoulli_kl_of_softened_sigmoids():
    s, t, y = torch.tensor([0.5, -2.0, 3.0]), torch.tensor([2.0, -1.0, 0.0]), torch.tensor([1.0, 0.0, 1.0])
    T = 2.0
    loss = DistillationLoss(torch.nn.BCEWithLogitsLoss(), "binary", T, 1.0)
    p, q = torch.sigmoid(t / T), torch.sigmoid(s / T)
    kl = (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).mean()
    assert float(loss(s, torch.stack([y, t], dim=1))) == pytest.approx(float(T * T * kl), rel=1e-5)


@pytest.fixture
def text_data(text_csvs):
    train, test = text_csvs
    return {"source": "text_files", "train": str(train), "test": str(test)}


def test_distill_runs_the_teacher_once_and_reports_the_ablation(tmp_path, text_data, monkeypatch):
    teacher_run = honed.train({"name": "teacher", "data": text_data | {"ngrams": 2, "ngram_buckets": 5000},
                               "model": {"name": "bag", "hidden": [32], "embedding_dim": 32},
                               "optimizer": {"lr": 0.05}, "train": {"epochs": 6, "batch_size": 8, "checkpoint": None}},
                              out=tmp_path / "teacher").path
    student = {"name": "student", "data": text_data, "model": {"name": "bag", "embedding_dim": 4},
               "optimizer": {"lr": 0.05}, "train": {"epochs": 4, "batch_size": 8, "checkpoint": None}}
    forwards = []
    original = Teacher.compute
    monkeypatch.setattr(Teacher, "compute", lambda self, *a: forwards.append(1) or original(self, *a))
    report = distill(teacher_run, student, temperature=3.0, alpha=0.5, out=tmp_path / "d")
    assert report["teacher_passes"] == 1 and len(forwards) == 1  # once, not once per epoch
    names = [r["model"] for r in report["rows"]]
    assert names[0].startswith("teacher") and "distillation" in names[1] and names[2] == "student alone"
    teacher_row, distilled, alone = report["rows"]
    assert distilled["params"] == alone["params"] < teacher_row["params"]
    assert distilled["bytes"] < teacher_row["bytes"]
    for row in report["rows"]:
        assert 0 <= row["test accuracy"] <= 1 and row["ms per example"] > 0
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["rows"][1]["model"] == names[1]
    page = (tmp_path / "d" / "distill.html").read_text()
    assert page.count("<tr>") == 4 and all(name.replace("&", "&amp;") in page for name in names)
    # the same teacher on the same data again: its outputs come from the cache
    again = Teacher(teacher_run, honed.load_run(teacher_run))
    honed.train(student, out=tmp_path / "again", objective=again)
    assert again.computed == 0 and len(forwards) == 1
    # into the same --out (as after a killed distill): refused, with advice that works; --overwrite runs it again
    with pytest.raises(UserError, match="an earlier distill is there.*--overwrite"):
        distill(teacher_run, student, out=tmp_path / "d")
    rerun = distill(teacher_run, student, temperature=3.0, alpha=0.5, out=tmp_path / "d", overwrite=True)
    assert rerun["rows"][1]["test accuracy"] == distilled["test accuracy"]  # the same run again, seeded


def test_a_teacher_for_other_data_is_refused(tmp_path, text_data):
    teacher_run = honed.train({"data": {"source": "sklearn", "name": "iris"}, "model": {"name": "mlp"},
                               "train": {"epochs": 1, "checkpoint": None}}, out=tmp_path / "t").path
    with pytest.raises(UserError, match="different labels"):
        honed.train({"data": text_data, "model": {"name": "bag"}, "train": {"epochs": 1, "checkpoint": None}},
                    out=tmp_path / "s", objective=Teacher(teacher_run, honed.load_run(teacher_run)))
    with pytest.raises(UserError, match="--temperature 0"):
        Teacher(teacher_run, honed.load_run(teacher_run), temperature=0)
    with pytest.raises(UserError, match="--alpha 1.5"):
        Teacher(teacher_run, honed.load_run(teacher_run), alpha=1.5)
