"""honed prune: whole units and channels out (not masks), the recipe's own model at smaller widths, fine-tuned
through the loop, measured before and after."""

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import honed
from honed.errors import UserError
from honed.models import Shape, build_model
from honed.recipe import load_recipe

tp = pytest.importorskip("torch_pruning")

from honed.export.prune import check_target, cost  # noqa: E402
from honed.export.structured import prune_model  # noqa: E402


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random biases (and BatchNorm statistics), so every unit is told apart by its bias and none is dead."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if getattr(m, "bias", None) is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
    return model.eval()


def kept_units(before: nn.Module, after: nn.Module) -> list[list[int]]:
    """For each biased layer, which of the original units survived (matched by their bias)."""
    pairs = [(a, b) for a, b in zip(before.modules(), after.modules()) if getattr(a, "bias", None) is not None]
    return [[int((a.bias - v).abs().argmin()) for v in b.bias] for a, b in pairs]


@pytest.mark.parametrize("model_spec, shape, kind", [
    ({"name": "mlp", "hidden": [32, 16]}, Shape("features", 6, 3), nn.Linear),
    ({"name": "cnn", "channels": [8, 16]}, Shape("features", 3 * 8 * 8, 4, image_shape=(3, 8, 8)), nn.Conv2d),
])
def test_without_fine_tuning_the_pruned_model_is_the_original_sub_network(model_spec, shape, kind):
    spec = load_recipe({"model": model_spec}).model
    original = randomized(build_model(spec, shape))
    pruned = randomized(build_model(spec, shape))
    pruned.load_state_dict(original.state_dict())
    x = torch.randn(7, shape.input_dim)
    widths = prune_model(pruned, spec, 0.5, x[:2])
    assert widths == [w // 2 for w in model_spec.get("hidden") or model_spec["channels"]]
    layers = [m for m in original.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    kept = kept_units(original, pruned)
    with torch.no_grad():  # the dropped units' outgoing weights set to zero: what is left is the sub-network
        for layer, following, survivors in zip(layers, layers[1:], kept):
            dropped = [i for i in range(following.weight.shape[1]) if i not in survivors]
            following.weight[:, dropped] = 0
        torch.testing.assert_close(pruned(x), original(x), rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in pruned.parameters()) < 0.6 * sum(p.numel() for p in original.parameters())


def test_multiply_adds_match_a_hand_count():
    mlp = build_model(load_recipe({"model": {"name": "mlp", "hidden": [32, 16]}}).model, Shape("features", 6, 3))
    # weights 6x32 + 32x16 + 16x3, one add per bias, one op per ReLU output (Torch-Pruning's count)
    assert cost(mlp, torch.randn(2, 6)) == (6 * 32 + 32 * 16 + 16 * 3 + (32 + 16 + 3) + (32 + 16), 803)
    cnn = build_model(load_recipe({"model": {"name": "cnn", "channels": [8, 16]}}).model,
                      Shape("features", 3 * 64, 4, image_shape=(3, 8, 8)))
    convs = 8 * 8 * 8 * 3 * 9 + 4 * 4 * 16 * 8 * 9  # per output pixel and channel: kernel x input channels
    per_output = 2 * (8 * 8 * 8 + 4 * 4 * 16)  # bias and ReLU on each conv output
    pools = 4 * (4 * 4 * 8 + 2 * 2 * 16) + 2 * 2 * 16  # 2x2 max pools read 4 inputs per output; the global mean
    assert cost(cnn, torch.randn(2, 192))[0] == convs + per_output + pools + 16 * 4 + 4


@pytest.mark.parametrize("target", [0, 1, 1.5, float("nan"), -0.2])
def test_a_target_outside_zero_to_one_is_one_line(target):
    with pytest.raises(UserError, match=r"--target .*: give the share of the model to take out, above 0 and below 1"):
        check_target(target, "macs", "magnitude")
    with pytest.raises(UserError, match="--by 'flops': choose macs or params"):
        check_target(0.5, "flops", "magnitude")


@pytest.fixture
def table_run(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    frame = pd.DataFrame(x, columns=list("abcd"))
    frame["label"] = np.where(x[:, 0] - x[:, 1] > 0, "up", "down")
    frame.iloc[:300].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[300:].to_csv(tmp_path / "test.csv", index=False)
    return honed.train("tabular", [f"data.train={tmp_path / 'train.csv'}", f"data.test={tmp_path / 'test.csv'}",
                                   "data.target=label", "model.bags=1", "model.hidden=[64,64]", "train.steps=null",
                                   "model.numeric_embedding=piecewise",
                                   "train.epochs=6", "train.report=false"], out=tmp_path / "run"), frame


def test_prune_writes_an_ordinary_smaller_run_and_measures_it(tmp_path, table_run):
    source, frame = table_run
    report = honed.prune(source.path, target=0.5, finetune_epochs=2, out=tmp_path / "pruned")
    width = report["widths"]["after"][0]
    assert report["widths"] == {"before": [64, 64], "after": [width, width]} and width < 64  # one share everywhere
    before, after, int8, ort_int8 = report["versions"]
    # widths in steps of 8: the step closest to half the multiply-adds
    assert 0.35 <= after["MACs"] / before["MACs"] <= 0.65 and after["params"] < before["params"]
    assert after["weights MB"] < before["weights MB"] and int8["weights MB"] < after["weights MB"]
    assert ort_int8["version"] == "pruned + ONNX Runtime int8" and ort_int8["ONNX Runtime ms, batch 1"] > 0
    assert abs(ort_int8["test accuracy"] - after["test accuracy"]) < 0.1  # int8 weights: the same answers, nearly
    assert 0 <= report["pruned_vs_before"]["p"] <= 1 and math.isfinite(report["pruned_vs_before"]["difference"])
    run = honed.Run.open(report["path"])
    assert run.recipe.model.hidden == [width, width] and run.recipe.train.epochs == 2  # the recipe says what it is
    page = (run.path / "report.html").read_text()  # the run's page shows the before/after table
    assert "Pruning (honed prune)" in page and f"[64, 64] → [{width}, {width}]" in page
    predictions = honed.predict(run.path, pd.read_csv(tmp_path / "test.csv").drop(columns=["label"]))
    assert (predictions["prediction"] == frame.iloc[300:]["label"].to_numpy()).mean() > 0.8


def test_unstructured_pruning_keeps_its_zeros_and_its_cost(tmp_path, table_run):
    source, _ = table_run
    with pytest.raises(UserError, match="use --by params"):
        honed.prune(source.path, target=0.6, structured=False)
    report = honed.prune(source.path, target=0.6, by="params", structured=False, finetune_epochs=2,
                         out=tmp_path / "sparse")
    before, after, *_ = report["versions"]
    assert after["MACs"] == before["MACs"] and after["params"] == before["params"]  # the same shapes
    model = honed.load_run(report["path"]).model
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, nn.Linear)])
    assert (weights == 0).float().mean() == pytest.approx(0.6, abs=0.01)  # still zero after fine-tuning


def test_pruning_can_fine_tune_toward_the_unpruned_models_outputs(tmp_path, table_run):
    source, _ = table_run
    plain = honed.prune(source.path, target=0.5, finetune_epochs=1, out=tmp_path / "plain")
    taught = honed.prune(source.path, target=0.5, finetune_epochs=1, out=tmp_path / "taught", distill=True)
    assert plain["distilled"] is None and taught["distilled"] == {"temperature": 2.0, "alpha": 0.5}
    a, b = honed.load_run(plain["path"]).model.state_dict(), honed.load_run(taught["path"]).model.state_dict()
    # the same pruned start, seed and rows: only the loss differs, so the fine-tuned weights must
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)


def test_a_bag_of_models_is_pruned_member_by_member_and_fine_tuned_on_its_own_folds(tmp_path, table_run):
    _, frame = table_run
    bag = honed.train("tabular", [f"data.train={tmp_path / 'train.csv'}", f"data.test={tmp_path / 'test.csv'}",
                                  "data.target=label", "model.bags=3", "model.hidden=[32,32]", "train.steps=null",
                                  "train.epochs=4", "train.report=false"], out=tmp_path / "bag")
    source = honed.Run.open(bag.path)
    loaded = source.load()
    x = source.test_split(loaded).x
    pruned = copy.deepcopy(loaded.model)
    assert prune_model(pruned, loaded.recipe.model, 0.5, x[:2]) == [16, 16] and len(pruned.members) == 3
    kept = []
    for before, after in zip(loaded.model.members, pruned.members):  # each member by its own units' importance
        hidden = [m for m in after.modules() if isinstance(m, nn.Linear)][:2]
        assert [layer.out_features for layer in hidden] == [16, 16]
        kept.append(kept_units(before, after))
    assert kept[0] != kept[1] or kept[1] != kept[2]  # members differ: so do the units they keep
    report = honed.prune(bag.path, target=0.5, finetune_epochs=1, out=tmp_path / "bag-pruned")
    run = honed.load_run(report["path"])
    assert run.recipe.model.bags == 3 and run.recipe.model.hidden == report["widths"]["after"]
    assert len(run.model.members) == 3
    before, after, *_ = report["versions"]
    assert after["params"] < 0.7 * before["params"]
    with pytest.raises(UserError, match="--distill: this run is a bag of 3 models"):
        honed.prune(bag.path, target=0.5, distill=True, out=tmp_path / "no")
