"""Differentially private training (train.privacy): per-example clipping, the noise, Poisson sampling and the
privacy spent, each checked against a reference (a hand loop over examples, the noise's formula, Opacus' own
accountant); the settings that would leak the training rows are refused."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import honed
from honed.errors import UserError
from honed.recipe.schema import PrivacySpec
from honed.run import checkpoints
from honed.training.batches import Batches

pytest.importorskip("opacus")
from honed.training.privacy import Privacy  # noqa: E402  (needs Opacus)

TEXT = {"source": "text_files", "vocabulary": "hashed", "ngram_buckets": 2048}


def private_pieces(model: nn.Module, rows: int, steps: int, noise: float, clip: float, lr: float = 1.0):
    privacy = Privacy(PrivacySpec(noise_multiplier=noise, max_grad_norm=clip), rows, steps, epochs=1)
    privacy.prepare(model)
    net, optimizer = privacy.attach(model, torch.optim.SGD(model.parameters(), lr=lr))
    return privacy, net, optimizer


def test_one_step_is_the_mean_of_individually_clipped_gradients():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(16, 5) * 3, torch.randint(0, 3, (16,))
    loss_fn = nn.CrossEntropyLoss()
    clip = 0.5
    # the reference: every example's own gradient, clipped to `clip` as one vector, summed, over the expected batch
    summed = [torch.zeros_like(p) for p in model.parameters()]
    norms = []
    for i in range(16):
        model.zero_grad()
        loss_fn(model(x[i : i + 1]), y[i : i + 1]).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
        norms.append(float(norm))
        for s, g in zip(summed, grads):
            s += g * min(1.0, clip / (float(norm) + 1e-6))
    before = [p.detach().clone() for p in model.parameters()]
    privacy, net, optimizer = private_pieces(model, rows=64, steps=4, noise=0.0, clip=clip)
    assert privacy.expected_batch == 16
    optimizer.zero_grad()
    loss_fn(net(x), y).backward()
    optimizer.step()
    assert sum(n > clip for n in norms) >= 4  # the bound really clips some examples
    for p, b, s in zip(model.parameters(), before, summed):
        torch.testing.assert_close(b - p.detach(), s / 16, atol=1e-6, rtol=1e-5)
    assert optimizer.clipped == sum(n > clip for n in norms) and optimizer.examples == 16


def test_the_noise_has_std_sigma_times_clip_over_the_expected_batch():
    torch.manual_seed(0)
    model = nn.Linear(200, 100)  # 20,100 parameters: the std is measured to within ~1%
    sigma, clip = 1.3, 0.7
    _, net, optimizer = private_pieces(model, rows=320, steps=10, noise=sigma, clip=clip)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    optimizer.zero_grad()
    (net(torch.randn(32, 200)).sum() * 0.0).backward()  # every per-example gradient is zero
    optimizer.step()
    update = before - torch.cat([p.detach().flatten() for p in model.parameters()])
    assert float(update.std()) == pytest.approx(sigma * clip / 32, rel=0.03)
    assert abs(float(update.mean())) < 4 * sigma * clip / 32 / math.sqrt(update.numel())


def test_poisson_batches_sample_each_row_at_rate_batch_over_rows():
    batches = Batches(torch.randn(1000, 3), torch.zeros(1000), batch_size=50, shuffle=True, seed=0, poisson=True)
    assert batches.steps_per_epoch == 20
    sizes = [rows for epoch in range(1, 11) for _, rows in batches.epoch(epoch)]
    assert len(sizes) == 200 and len(set(sizes)) > 5  # sizes vary from step to step
    assert sum(sizes) / (200 * 1000) == pytest.approx(50 / 1000, rel=0.03)
    again = [rows for _, rows in batches.epoch(3)]
    assert again == sizes[40:60]  # a function of (seed, epoch): a resumed run draws the same rows


def test_empty_poisson_batches_are_taken_as_steps_of_noise():
    spec = {"name": "tiny", "data": {"source": "sklearn", "name": "iris", "standardize": False},
            "model": {"name": "logistic"}, "optimizer": {"name": "sgd", "lr": 0.05},
            "train": {"epochs": 2, "batch_size": 1, "checkpoint": None, "privacy": {"noise_multiplier": 1.0}}}
    recipe = honed.load_recipe(spec)
    batches = Batches(torch.randn(96, 4), torch.zeros(96), 1, True, recipe.seed, poisson=True)
    assert sum(rows == 0 for _, rows in batches.epoch(1)) > 10  # (1 - 1/96)^96: a third of the steps are empty
    run = honed.train(spec, out=None, quiet=True)
    assert run.summary["privacy"]["steps"] == 2 * 96 and math.isfinite(run.summary["test"]["loss"])


def test_the_epsilon_spent_is_opacus_accountant_s_and_within_the_budget(tmp_path):
    from opacus.accountants import create_accountant

    spec = {"name": "budget", "data": {"source": "sklearn", "name": "digits", "standardize": False},
            "model": {"name": "mlp", "hidden": [32]}, "optimizer": {"name": "adam", "lr": 0.01},
            "train": {"epochs": 3, "batch_size": 64, "checkpoint": None,
                      "privacy": {"epsilon": 3.0, "max_grad_norm": 1.0, "accountant": "rdp"}}}
    run = honed.train(spec, out=tmp_path / "run")
    spent = run.summary["privacy"]
    reference = create_accountant("rdp")
    reference.history = [(spent["noise_multiplier"], spent["sample_rate"], spent["steps"])]
    assert spent["epsilon"] == pytest.approx(reference.get_epsilon(delta=spent["delta"]), rel=1e-9)
    assert 2.9 <= spent["epsilon"] <= 3.0  # the noise spends the budget, and no more
    assert spent["delta"] == pytest.approx(1 / (10 * run.summary["sizes"]["train"]))
    assert spent["sample_rate"] == pytest.approx(1 / math.ceil(run.summary["sizes"]["train"] / 64))
    epochs = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [e["epsilon"] for e in epochs] == sorted(e["epsilon"] for e in epochs)  # spent as it trains
    assert all(0 <= e["clipped_fraction"] <= 1 and e["noise_to_signal"] > 0 for e in epochs)
    assert run.summary["test"]["accuracy"] > 0.7  # digits, private at epsilon 3, still learns


def test_a_run_cut_at_exact_steps_calibrates_its_noise_to_the_steps_it_takes(tmp_path):
    """train.exact_steps: 40 steps of a planned 3 x 18 spend the whole budget (noise for 40 steps, not 54)."""
    spec = {"name": "exact", "data": {"source": "sklearn", "name": "digits", "standardize": False},
            "model": {"name": "mlp", "hidden": [32]}, "optimizer": {"name": "adam", "lr": 0.01},
            "train": {"epochs": 3, "steps": 40, "exact_steps": True, "batch_size": 64, "checkpoint": None,
                      "privacy": {"epsilon": 3.0, "max_grad_norm": 1.0, "accountant": "rdp"}}}
    spent = honed.train(spec, out=tmp_path / "run").summary["privacy"]
    assert spent["steps"] == spent["planned_steps"] == 40
    assert 2.9 <= spent["epsilon"] <= 3.0


def test_prv_accounting_matches_opacus_for_a_given_noise(tmp_path):
    from opacus.accountants import create_accountant

    spec = {"name": "noise", "data": {"source": "sklearn", "name": "iris", "standardize": False},
            "model": {"name": "logistic"}, "optimizer": {"lr": 0.05},
            "train": {"epochs": 4, "batch_size": 16, "checkpoint": None, "privacy": {"noise_multiplier": 1.1}}}
    spent = honed.train(spec, out=tmp_path / "run", quiet=True).summary["privacy"]
    reference = create_accountant("prv")
    for _ in range(spent["steps"]):
        reference.step(noise_multiplier=1.1, sample_rate=spent["sample_rate"])
    assert spent["epsilon"] == pytest.approx(reference.get_epsilon(delta=spent["delta"]), rel=1e-6)


def test_a_private_recurrent_model_trains_and_is_plain_afterwards(text_csvs, tmp_path):
    train_csv, test_csv = text_csvs
    spec = {"name": "rnn", "data": TEXT | {"train": str(train_csv), "test": str(test_csv)},
            "model": {"name": "rnn", "embedding_dim": 8, "hidden_size": 8}, "optimizer": {"lr": 0.05},
            "train": {"epochs": 3, "batch_size": 8, "checkpoint": None, "privacy": {"noise_multiplier": 0.3}}}
    run = honed.train(spec, out=tmp_path / "run")
    assert type(run.model.rnn) is nn.LSTM  # Opacus' DPLSTM only while training
    # nothing measured on the training rows is published beside the weights: no text profile, no class counts
    assert json.loads((run.path / "preprocess.json").read_text())["profile"] == {}
    assert set(run.summary["data"]["class_counts"]) == {"val", "test"}
    _, reloaded, pre = honed.load_run(run.path)
    x = pre.inputs(["match goal team", "vote party law"])[:]
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), run.model.eval()(x))


def test_a_layer_dp_cannot_train_is_named():
    from honed.training.privacy import check_layers

    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    with pytest.raises(UserError, match=r"train.privacy: layer '1' \(BatchNorm1d\): BatchNorm cannot"):
        check_layers(model)


@pytest.mark.parametrize("settings, culprit", [
    ({"data": TEXT | {"vocabulary": "train"}}, "data.vocabulary = train under train.privacy"),
    ({"data": {"source": "text_files", "tokenizer": "bpe"}}, "data.tokenizer = bpe under train.privacy"),
    ({"data": TEXT | {"ngrams": "auto"}, "model": {"name": "bag"}}, "data.ngrams = auto"),
    ({"data": TEXT, "model": {"name": "bag", "pooling": "tfidf"}}, "model.pooling = tfidf"),
    ({"data": {"source": "sklearn", "name": "digits"}}, "data.standardize under train.privacy"),
    ({"data": TEXT, "regularization": {"l2": 0.01}}, "regularization.l1/l2"),
    ({"data": TEXT, "optimizer": {"name": "gd"}}, "optimizer.name under train.privacy"),
    ({"data": TEXT, "model": {"name": "bag", "sparse": True}}, "model.sparse under train.privacy"),
    ({"data": TEXT, "train": {"accumulate": 2}}, "train.accumulate"),
    ({"data": {"source": "tabular", "path": "t.csv", "target": "y", "standardize": False}}, "data.column_types"),
    ({"data": {"source": "tabular", "path": "t.csv", "target": "y", "standardize": False, "columns": ["a"],
               "column_types": {"a": "numeric"}}, "model": {"name": "mlp", "ensemble": 4}}, "model.ensemble"),
])
def test_settings_that_leak_the_training_rows_are_refused_with_the_private_alternative(settings, culprit):
    files = {"train": "x.csv", "test": "y.csv"} if settings["data"]["source"] == "text_files" else {}
    spec = {"data": files | settings["data"],
            "model": {"name": "logistic"} | settings.get("model", {}), "optimizer": settings.get("optimizer", {}),
            "regularization": settings.get("regularization", {}),
            "train": {"privacy": {"epsilon": 3}} | settings.get("train", {})}
    with pytest.raises(UserError, match="set ") as error:
        honed.load_recipe(spec)
    assert culprit in str(error.value) and "\n" not in str(error.value)


def test_a_teacher_that_saw_the_rows_without_privacy_is_refused(text_csvs, tmp_path, text_run):
    from honed.tuning import distill

    train_csv, test_csv = text_csvs
    student = {"name": "student", "data": TEXT | {"train": str(train_csv), "test": str(test_csv)},
               "model": {"name": "bag", "embedding_dim": 8},
               "train": {"epochs": 1, "checkpoint": None, "privacy": {"epsilon": 8}}}
    with pytest.raises(UserError, match="voids the guarantee"):
        distill(text_run, student, out=tmp_path / "d")


def test_a_private_run_resumes_after_sigkill_to_the_same_weights_and_epsilon(tmp_path, killed_at_step):
    spec = {"name": "resumable", "seed": 2, "data": {"source": "sklearn", "name": "digits", "standardize": False},
            "model": {"name": "mlp", "hidden": [16]}, "optimizer": {"name": "adam", "lr": 0.01},
            "train": {"epochs": 3, "batch_size": 64, "checkpoint": {"every_steps": 7, "keep": 1},
                      "privacy": {"epsilon": 5}}}
    killed = tmp_path / "killed"
    killed_at_step(spec, killed, 30)
    assert checkpoints.load_latest(killed)["step"] == 28  # mid-epoch 2 (18 steps per epoch)
    resumed, whole = honed.resume(killed), honed.train(spec, out=tmp_path / "whole")
    assert resumed.summary["privacy"]["epsilon"] == pytest.approx(whole.summary["privacy"]["epsilon"], rel=1e-12)
    assert resumed.summary["privacy"]["steps"] == whole.summary["privacy"]["steps"] == 54
    a, b = load_file(str(resumed.path / "model.safetensors")), load_file(str(whole.path / "model.safetensors"))
    for key in b:  # the same rows drawn and the same noise added after the restart
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)


def test_compare_over_epsilon_draws_the_privacy_utility_curve(tmp_path):
    base = {"name": "curve", "data": {"source": "sklearn", "name": "digits", "standardize": False},
            "model": {"name": "logistic"}, "optimizer": {"lr": 0.01},
            "train": {"epochs": 2, "batch_size": 128, "checkpoint": None, "privacy": {"epsilon": 1}}}
    result = honed.compare(base, ["train.privacy.epsilon=0.5,4,null"], out=tmp_path / "c")
    spent = {row["run"]: row.get("epsilon") for row in result.rows}
    assert spent["epsilon=None"] is None  # null: the same recipe, not private
    assert 0.45 < spent["epsilon=0.5"] <= 0.5 and 3.8 < spent["epsilon=4"] <= 4
    accuracy = {row["run"]: row["test accuracy"] for row in result.rows}
    assert accuracy["epsilon=0.5"] < accuracy["epsilon=None"]  # privacy costs accuracy
    assert (result.out / "privacy.png").stat().st_size > 10_000
    assert (result.out / "compare.html").read_text().count("<img") == 2


def test_per_example_gradients_of_a_bag_count_repeated_words_against_autograd():
    from honed.models.linear import TextLinear

    torch.manual_seed(0)
    model = TextLinear(50, 3, "mean")
    with torch.no_grad():
        model.pool.embedding.weight.normal_()
    tokens = torch.tensor([[5, 5, 5, 7, 0, 0], [9, 3, 3, 0, 0, 0], [4, 4, 4, 4, 4, 4]])  # repeats, padding
    y = torch.tensor([0, 2, 1])
    reference = []
    for i in range(3):
        model.zero_grad()
        nn.functional.cross_entropy(model(tokens[i : i + 1]), y[i : i + 1]).backward()
        reference.append({name: p.grad.clone() for name, p in model.named_parameters()})
    _, net, optimizer = private_pieces(model, rows=12, steps=4, noise=0.0, clip=1e6)
    optimizer.zero_grad()
    nn.functional.cross_entropy(net(tokens), y).backward()
    for name, p in model.named_parameters():
        for i in range(3):
            torch.testing.assert_close(p.grad_sample[i], reference[i][name], atol=1e-6, rtol=1e-5)


def test_per_example_gradients_of_a_unit_norm_bag_match_autograd():
    from honed.models.linear import TextLinear

    torch.manual_seed(1)
    model = TextLinear(40, 1, "l2")
    with torch.no_grad():
        model.pool.embedding.weight.normal_()
    tokens = torch.tensor([[5, 5, 7, 0], [9, 3, 3, 3], [4, 0, 0, 0]])
    y = torch.tensor([1.0, 0.0, 1.0])
    reference = []
    for i in range(3):
        model.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(model(tokens[i : i + 1]), y[i : i + 1]).backward()
        reference.append(model.pool.embedding.weight.grad.clone())
    _, net, optimizer = private_pieces(model, rows=12, steps=4, noise=0.0, clip=1e6)
    optimizer.zero_grad()
    nn.functional.binary_cross_entropy_with_logits(net(tokens), y).backward()
    for i in range(3):
        torch.testing.assert_close(model.pool.embedding.weight.grad_sample[i], reference[i], atol=1e-6, rtol=1e-5)
    # the sum over the square root of the length: [5, 5, 7] is (2 w5 + w7) / sqrt(3), on every path
    with torch.no_grad():
        w = model.pool.embedding.weight[:, 0]
        torch.testing.assert_close(model.pool(tokens[:1])[0, 0], (2 * w[5] + w[7]) / 3 ** 0.5)
        torch.testing.assert_close(model.pool.gathered(tokens), model.pool(tokens))


def test_the_bundled_private_imdb_recipe_trains_within_its_budget(imdb_archive, tmp_path):
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "imdb_private.yaml"
    run = honed.train(recipe, [f"data.path={imdb_archive}", "train.batch_size=8", "data.val_fraction=0.25"],
                      out=tmp_path / "run", quiet=True)
    spent = run.summary["privacy"]
    assert 7.5 < spent["epsilon"] <= 8.0 and spent["steps"] == spent["planned_steps"]
    assert not (run.path / "vocab.json").exists() or json.loads((run.path / "vocab.json").read_text()) == [
        "<pad>", "<unk>"]  # nothing counted from the private reviews
