"""Spending less on a pretrained encoder: LoRA (peft), frozen layers, activation checkpointing.

A small BERT (3 layers, hidden 32) saved in Hugging Face layout stands in for a large one: a local folder
must work exactly as the bundled encoder does."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import honed
from honed.errors import UserError
from honed.run import checkpoints

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

LAYERS, HIDDEN, RANK = 3, 32, 4  # the small_bert fixture's (conftest.py)


LORA = {"adapter": {"name": "lora", "r": RANK, "alpha": 8, "targets": ["query", "value"]}}


def pretrained_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_lora_trains_the_formula_s_parameters_and_leaves_the_base_weights_bit_identical(
        small_bert, tmp_path, small_bert_recipe):
    run = honed.train(small_bert_recipe(LORA), out=tmp_path / "run")
    per_target = RANK * (HIDDEN + HIDDEN)  # A: r x in, B: out x r, for each of query and value in every layer
    head = HIDDEN * 3 + 3
    assert run.summary["trainable_params"] == LAYERS * 2 * per_target + head
    base = {name.replace(".base_layer", ""): p for name, p in run.model.base.named_parameters() if "lora_" not in name}
    assert run.summary["params"] == run.summary["trainable_params"] + sum(p.numel() for p in base.values())
    pretrained = pretrained_weights(small_bert)
    assert set(pretrained) <= set(base)  # and BERT's pooler, never read
    for name, weight in pretrained.items():
        assert torch.equal(base[name].detach(), weight), name
    lora_b = [p for name, p in run.model.named_parameters() if "lora_B" in name]
    assert len(lora_b) == LAYERS * 2 and all(p.abs().sum() > 0 for p in lora_b)  # B starts at zero: it trained


def test_the_merged_model_equals_the_adapted_one_and_is_a_plain_encoder(small_bert, tmp_path, small_bert_recipe):
    run = honed.train(small_bert_recipe(LORA, epochs=2), out=tmp_path / "run")
    _, merged, pre = honed.load_run(run.path)
    assert not any("lora_" in name for name, _ in merged.named_parameters())
    adapter = run.summary["trainable_params"] - (HIDDEN * 3 + 3)
    assert sum(p.numel() for p in merged.parameters()) == run.summary["params"] - adapter
    x = pre.inputs(["the team scored a goal", "vote for the party and the law", "bake bread"])[:]
    with torch.no_grad():
        unmerged = run.model.eval()(x)
        torch.testing.assert_close(merged(x), unmerged, atol=1e-5, rtol=1e-5)
        query = merged.encoder.encoder.layer[0].attention.self.query.weight
        assert not torch.equal(query, pretrained_weights(small_bert)["encoder.layer.0.attention.self.query.weight"])


def test_a_lora_run_exports_to_onnx_equal_to_the_unmerged_model(tmp_path, small_bert_recipe):
    pytest.importorskip("onnxruntime")
    from honed.export import OnnxPredictor, export_onnx

    run = honed.train(small_bert_recipe(LORA, epochs=2), out=tmp_path / "run")
    assert export_onnx(run.path)["check"]["max_abs_difference"] <= 1e-4
    texts = ["the team scored a late goal", "vote", "cook the dinner with spice"]
    _, _, pre = honed.load_run(run.path)
    with torch.no_grad():
        probabilities = torch.softmax(run.model.eval()(pre.inputs(texts)[:]), dim=1)
    for row, expected in zip(OnnxPredictor(run.path / "onnx").predict(texts), probabilities):
        labels = sorted(row["probabilities"])
        got = torch.tensor([row["probabilities"][label] for label in labels])
        torch.testing.assert_close(got, expected.float(), atol=1e-4, rtol=0)


def test_frozen_layers_keep_their_weights_and_get_no_optimizer_state(small_bert, tmp_path, small_bert_recipe):
    run = honed.train(small_bert_recipe({"freeze": 2}, checkpoint={"every_epochs": 1, "keep_final": True}),
                      out=tmp_path / "run")
    pretrained = pretrained_weights(small_bert)
    trained = {name: p.detach() for name, p in run.model.encoder.named_parameters()}
    frozen = [n for n in pretrained if n.startswith(("embeddings.", "encoder.layer.0.", "encoder.layer.1."))]
    moving = [n for n in pretrained if n.startswith("encoder.layer.2.")]
    assert all(torch.equal(trained[n], pretrained[n]) for n in frozen)
    assert all(not torch.equal(trained[n], pretrained[n]) for n in moving if n.endswith("weight"))
    state = checkpoints.load_latest(run.path)
    assert not any(f"encoder.{n}" in state["model"] for n in frozen)  # rebuilt from the pretrained folder
    optimized = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
    assert optimized == run.summary["trainable_params"]
    stepped = sum(s["exp_avg"].numel() for s in state["optimizer"]["state"].values())
    assert stepped == optimized  # Adam's moments for the trained parameters only


def test_activation_checkpointing_gives_the_same_gradients(small_bert):
    from honed.models.transformer import TransformerClassifier

    tokens = torch.randint(1, 30000, (4, 12))
    grads, kept = [], []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = TransformerClassifier(small_bert, 2, dropout=0.1, adapter=None).train()
        if checkpointing:
            model.checkpoint_activations()
        torch.manual_seed(1)  # the same dropout masks: the recomputation replays the saved random state
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
            out = model(tokens).sum()
        out.backward()
        kept.append(sum(saved))
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad})
    assert kept[1] < kept[0] / 2  # the layers' activations were not kept for the backward pass
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5)


def test_lora_with_activation_checkpointing_trains_the_adapter(tmp_path, small_bert_recipe):
    run = honed.train(small_bert_recipe(LORA, activation_checkpointing=True), out=tmp_path / "run")
    plain = honed.train(small_bert_recipe(LORA), out=tmp_path / "plain")
    a, b = load_file(str(run.path / "model.safetensors")), load_file(str(plain.path / "model.safetensors"))
    for key in b:  # recomputed activations, same arithmetic: the same trained weights
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


def test_a_lora_run_resumes_after_sigkill_to_the_same_weights(small_bert, tmp_path, killed_at_step, small_bert_recipe):
    spec = small_bert_recipe(LORA, checkpoint={"every_steps": 3, "keep": 1})
    killed = tmp_path / "killed"
    killed_at_step(spec, killed, 8)
    saved = checkpoints.load_latest(killed)
    assert saved["step"] == 6 and all("lora_" in k or k.startswith("head.") for k in saved["model"])
    checkpoint_bytes = sum(f.stat().st_size for f in (killed / "checkpoints").glob("*.pt"))
    assert checkpoint_bytes < (small_bert / "model.safetensors").stat().st_size / 10  # the encoder is not in it
    resumed = honed.resume(killed)
    whole = honed.train(spec, out=tmp_path / "whole")
    a, b = load_file(str(resumed.path / "model.safetensors")), load_file(str(whole.path / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in b:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)


def test_settings_that_make_no_sense_name_what_exists(tmp_path, small_bert_recipe):
    with pytest.raises(UserError, match=r"'keys' names no linear layer.*dense, key, query, value"):
        honed.train(small_bert_recipe({"adapter": {"targets": ["query", "keys"]}}), out=tmp_path / "a")
    with pytest.raises(UserError, match="model.freeze = 4: the encoder has 3 layers"):
        honed.train(small_bert_recipe({"freeze": 4}), out=tmp_path / "b")
    with pytest.raises(UserError, match="model.adapter works with model.name = transformer or causal_lm only"):
        honed.load_recipe({"model": {"name": "mlp", "adapter": {"r": 4}}})
    with pytest.raises(UserError, match="train.activation_checkpointing works with model.name = transformer or causal_lm only"):
        honed.load_recipe({"model": {"name": "mlp"}, "train": {"activation_checkpointing": True}})


def test_a_lora_run_quantizes_teaches_and_learns_as_a_student(tmp_path, small_bert_recipe):
    pytest.importorskip("onnxruntime")
    from honed.export import quantize
    from honed.tuning import distill

    teacher = honed.train(small_bert_recipe(LORA), out=tmp_path / "teacher")
    versions = {v["version"]: v for v in quantize(teacher.path)["versions"]}
    assert versions["float32 (PyTorch)"]["test accuracy"] == pytest.approx(teacher.summary["test"]["accuracy"])
    assert "int8 (PyTorch)" in versions  # the merged encoder's linear layers, quantized
    student = small_bert_recipe(LORA, epochs=2) | {"name": "student"}
    report = distill(teacher.path, student, out=tmp_path / "d")
    teacher_row, distilled, alone = report["rows"]
    assert teacher_row["params"] == distilled["params"] == teacher.summary["params"]  # a LoRA student of a LoRA teacher
