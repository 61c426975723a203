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
            if isinstance(getattr(m, "bias", None), torch.Tensor):  # (an RNN's .bias is a flag)
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
    assert list(widths.values()) == [[w // 2 for w in model_spec.get("hidden") or model_spec["channels"]]]
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
    width = report["widths"]["after"]["hidden"][0]
    assert report["widths"] == {"before": {"hidden": [64, 64]}, "after": {"hidden": [width, width]}} and width < 64
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
    assert "Pruning (honed prune)" in page and f"model.hidden [64, 64] → [{width}, {width}]" in page
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
    assert prune_model(pruned, loaded.recipe.model, 0.5, x[:2]) == {"hidden": [16, 16]} and len(pruned.members) == 3
    kept = []
    for before, after in zip(loaded.model.members, pruned.members):  # each member by its own units' importance
        hidden = [m for m in after.modules() if isinstance(m, nn.Linear)][:2]
        assert [layer.out_features for layer in hidden] == [16, 16]
        kept.append(kept_units(before, after))
    assert kept[0] != kept[1] or kept[1] != kept[2]  # members differ: so do the units they keep
    report = honed.prune(bag.path, target=0.5, finetune_epochs=1, out=tmp_path / "bag-pruned")
    run = honed.load_run(report["path"])
    assert run.recipe.model.bags == 3 and run.recipe.model.hidden == report["widths"]["after"]["hidden"]
    assert len(run.model.members) == 3
    before, after, *_ = report["versions"]
    assert after["params"] < 0.7 * before["params"]
    with pytest.raises(UserError, match="--distill: this run is a bag of 3 models"):
        honed.prune(bag.path, target=0.5, distill=True, out=tmp_path / "no")


def test_an_encoder_without_fine_tuning_is_the_original_with_its_dropped_heads_and_units_silenced(
        tmp_path, small_bert_recipe):
    pytest.importorskip("transformers")
    run = honed.train(small_bert_recipe(epochs=2, report=False), out=tmp_path / "run")
    source = honed.Run.open(run.path)
    loaded = source.load()
    x = source.test_split(loaded).x[:]  # padded ids
    original, pruned = loaded.model, copy.deepcopy(loaded.model)
    widths = prune_model(pruned, loaded.recipe.model, 0.5, x[:2])
    assert widths == {"attention_heads": [1, 1, 1], "ffn_width": [32, 32, 32]}  # of 2 heads and 64 units a layer
    silenced = copy.deepcopy(original)
    size = original.base.config.hidden_size // original.base.config.num_attention_heads
    for before, after, quiet in zip(original.base.encoder.layer, pruned.base.encoder.layer, silenced.base.encoder.layer):
        kept_rows = [int((before.attention.self.query.bias - b).abs().argmin()) for b in after.attention.self.query.bias]
        kept_units_ = [int((before.intermediate.dense.bias - b).abs().argmin()) for b in after.intermediate.dense.bias]
        assert len(kept_rows) == size and kept_rows == list(range(kept_rows[0], kept_rows[0] + size))  # a whole head
        with torch.no_grad():  # what a dropped head or unit adds to the residual stream, set to zero
            quiet.attention.output.dense.weight[:, [r for r in range(2 * size) if r not in kept_rows]] = 0
            quiet.output.dense.weight[:, [u for u in range(64) if u not in kept_units_]] = 0
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), silenced(x), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(pruned(x), original(x), atol=1e-3)  # and something was taken out


def test_a_lora_run_prunes_into_an_ordinary_smaller_run_that_reloads(tmp_path, small_bert_recipe):
    pytest.importorskip("peft")
    lora = {"adapter": {"name": "lora", "r": 4, "alpha": 8, "targets": ["query", "value"]}}
    run = honed.train(small_bert_recipe(lora, epochs=2, report=False), out=tmp_path / "run")
    report = honed.prune(run.path, target=0.5, finetune_epochs=1, out=tmp_path / "pruned")
    assert report["widths"]["after"] == {"attention_heads": [1, 1, 1], "ffn_width": [32, 32, 32]}
    before, after, *_ = report["versions"]
    assert after["MACs"] < 0.75 * before["MACs"] and after["params"] < before["params"]
    pruned = honed.Run.open(report["path"])
    assert pruned.recipe.model.adapter is None and pruned.recipe.model.ffn_width == [32, 32, 32]
    loaded = pruned.load()  # rebuilt from the pretrained folder at the recipe's widths, its weights loaded
    layer = loaded.model.base.encoder.layer[0]
    assert layer.attention.self.query.out_features == 16 and layer.intermediate.dense.out_features == 32
    frame = honed.predict(pruned.path, ["the team scored a late goal", "bake the bread for dinner"])
    assert len(frame) == 2 and set(frame["prediction"]) <= {"sports", "food", "politics"}
    pytest.importorskip("onnxruntime")
    from honed.export import OnnxPredictor, TorchPredictor, export_onnx

    bundle = export_onnx(pruned.path)  # fewer heads and units than the pretrained folder's config says
    assert bundle["check"]["max_abs_difference"] <= 1e-4
    texts = ["vote for the party", "a long match with a goal and a win for the team", "bake"]
    x = loaded.pre.inputs(texts)[:]
    torch.testing.assert_close(OnnxPredictor(pruned.path / "onnx").scores(x), TorchPredictor(pruned.path).scores(x),
                               atol=1e-4, rtol=1e-4)
    with pytest.raises(UserError, match=r"model.ffn_width = \[128, 1, 1\]: give one count per encoder layer \(3\)"):
        honed.train(small_bert_recipe({"ffn_width": [128, 1, 1]}), out=tmp_path / "bad")


@pytest.mark.parametrize("cell, layers, bidirectional", [("lstm", 2, True), ("gru", 1, False)])
def test_a_recurrent_network_without_fine_tuning_is_the_original_with_its_dropped_units_unread(cell, layers,
                                                                                               bidirectional):
    spec = load_recipe({"model": {"name": "rnn", "cell": cell, "hidden_size": 16, "layers": layers,
                                  "bidirectional": bidirectional, "embedding_dim": 8}}).model
    original = randomized(build_model(spec, Shape("tokens", 50, 3)))
    pruned = copy.deepcopy(original)
    tokens = torch.randint(1, 50, (5, 9))
    tokens[1, 6:] = 0  # a shorter text
    assert prune_model(pruned, spec, 0.5, tokens[:2]) == {"hidden_size": 8}
    rnn, directions = original.rnn, 2 if bidirectional else 1
    silenced = copy.deepcopy(original)
    gates = rnn.weight_ih_l0.shape[0] // 16
    with torch.no_grad():  # find each layer's surviving units by their biases; silence the others where they are read
        survivors = []
        for layer in range(layers):
            for d, suffix in enumerate(["", "_reverse"][:directions]):
                before = getattr(rnn, f"bias_hh_l{layer}{suffix}")[:16]
                after = getattr(pruned.rnn, f"bias_hh_l{layer}{suffix}")[:8]
                units = [int((before - b).abs().argmin()) for b in after]
                survivors.append(units)
                dropped = [u for u in range(16) if u not in units]
                getattr(silenced.rnn, f"weight_hh_l{layer}{suffix}")[:, dropped] = 0
                readers = [getattr(silenced.rnn, f"weight_ih_l{layer + 1}{s}") for s in ["", "_reverse"][:directions]] \
                    if layer + 1 < layers else [silenced.head.linear.weight]
                for weight in readers:
                    weight[:, [d * 16 + u for u in dropped]] = 0
        assert all(len(set(units)) == 8 for units in survivors) and gates in (3, 4)
        torch.testing.assert_close(pruned(tokens), silenced(tokens), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(pruned.head(pruned.last_real_state(tokens)),  # the export path (no packing)
                                   silenced.head(silenced.last_real_state(tokens)), rtol=1e-5, atol=1e-5)
    assert pruned.rnn.hidden_size == 8 and sum(p.numel() for p in pruned.parameters()) < \
        sum(p.numel() for p in original.parameters())


def test_pruning_in_rounds_within_a_budget_reaches_the_target_and_says_how(tmp_path, table_run):
    source, _ = table_run
    report = honed.prune(source.path, target=0.75, by="params", rounds=2, budget=20, out=tmp_path / "rounds")
    first, second = report["rounds"]
    assert first["widths"]["hidden"][0] > second["widths"]["hidden"][0] == report["widths"]["after"]["hidden"][0]
    before, after, *_ = report["versions"]
    assert after["params"] / before["params"] == pytest.approx(0.25, abs=0.08)  # each round half of what was left
    assert report["finetune_epochs"] == first["epochs"] + second["epochs"] and report["budget_seconds"] == 20
    assert honed.Run.open(report["path"]).recipe.name == "tabular-pruned"  # one suffix, however many rounds
    assert list((tmp_path / "rounds").parent.glob("round-*")) == []  # the rounds between leave nothing behind
    for bad, message in [({"rounds": 0}, "--rounds 0: give 1 to 20"),
                         ({"budget": float("nan")}, "--budget nan: give the seconds"),
                         ({"budget": 10, "finetune_epochs": 2}, "--budget and --finetune-epochs both say")]:
        with pytest.raises(UserError, match=message):
            honed.prune(source.path, target=0.5, **bad)


def test_a_budget_becomes_epochs_from_the_runs_own_pace_and_a_deadline_per_member(monkeypatch):
    from types import SimpleNamespace

    from honed.export import prune as pruning

    one = SimpleNamespace(summary={"timing": {"training": 10.0}, "epochs_run": 5})  # 2 s an epoch
    assert pruning.epochs_within(7, one, cost_share=0.5) == 7  # 1 s an epoch at half the multiply-adds
    bag = SimpleNamespace(summary={"timing": {"training": 12.0}, "bags": [{"epochs": 2}] * 3})  # 2 s a member-epoch
    assert pruning.epochs_within(24, bag, cost_share=1.0) == 4  # an epoch of 3 members: 6 s
    assert pruning.epochs_within(0.1, one, cost_share=0.5) == 1  # at least one
    clock = [100.0]
    from honed.training import hooks

    monkeypatch.setattr(hooks.time, "perf_counter", lambda: clock[0])
    deadline = hooks.Deadline(10, "honed prune's --budget ran out", members=2)  # member 0 until 5 s, 1 until 10 s
    clock[0] = 106.0
    first, second = SimpleNamespace(member=0, stop_reason=""), SimpleNamespace(member=1, stop_reason="")
    deadline.on_step_end(first, None)
    deadline.on_step_end(second, None)
    assert "--budget ran out" in first.stop_reason and second.stop_reason == ""


def test_a_model_without_hidden_widths_is_refused_in_one_line(regression_run):
    with pytest.raises(UserError, match=r"honed prune works on mlp, bag, cnn, resnet, rnn, transformer models; "
                                        r"this run's model is 'linear'"):
        honed.prune(regression_run, target=0.5)


def test_a_whitening_stem_is_never_pruned_and_the_pruned_resnet_rebuilds_from_its_widths():
    spec = load_recipe({"model": {"name": "resnet", "channels": [24, 16, 32], "stem": "whiten"}}).model
    shape = Shape("features", 3 * 8 * 8, 4, image_shape=(3, 8, 8))
    model = build_model(spec, shape)
    model.fit_to_training_rows(torch.randn(20, 3 * 8 * 8))
    x = torch.randn(5, shape.input_dim)
    widths = prune_model(model, spec, 0.5, x[:2])
    assert widths["channels"][1:] == [8, 16] and model.stem.conv.weight.shape == (24, 3, 2, 2)
    rebuilt = build_model(spec.model_copy(update=widths), shape).eval()
    rebuilt.load_state_dict(model.state_dict())  # the recipe's new widths describe the pruned model exactly
    torch.testing.assert_close(rebuilt(x), model.eval()(x))
