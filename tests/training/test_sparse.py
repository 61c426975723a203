"""Sparse embeddings: the split optimizer must step exactly as torch.optim does on each part."""

import copy

import torch
from torch import nn

from honed.models import Shape, build_model
from honed.recipe import load_recipe
from honed.training.optimizers import SplitOptimizer, build_optimizer, sparse_parameters
from honed.training.regularization import penalized_weights
from honed.training.schedules import Schedule


def bag_recipe(**optimizer):
    return load_recipe({"model": {"name": "bag", "embedding_dim": 4, "hidden": [3], "sparse": True},
                        "data": {"source": "text_files", "train": "x.csv"},
                        "optimizer": {"name": "adam", "lr": 0.05, **optimizer}})


def bag(recipe):
    torch.manual_seed(0)
    return build_model(recipe.model, Shape("tokens", 50, 1))


def batches(n=6):
    g = torch.Generator().manual_seed(1)
    return [(torch.randint(0, 50, (8, 7), generator=g), torch.randint(0, 2, (8,), generator=g).float())
            for _ in range(n)]


def train(model, optimizer, schedule=None):
    for x, y in batches():
        optimizer.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
        optimizer.step()
        if schedule:
            schedule.after_step()


def test_sparse_embedding_steps_with_sparse_adam_and_the_rest_with_adam():
    recipe = bag_recipe()
    ours, ref = bag(recipe), bag(recipe)
    optimizer = build_optimizer(ours, recipe.optimizer)
    assert isinstance(optimizer, SplitOptimizer)
    train(ours, optimizer)

    emb = ref.embedding.weight
    rest = [p for p in ref.parameters() if p is not emb]
    reference = [torch.optim.SparseAdam([emb], lr=0.05), torch.optim.Adam(rest, lr=0.05)]
    for x, y in batches():
        for o in reference:
            o.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(ref(x), y)
        loss.backward()
        assert emb.grad.is_sparse
        for o in reference:
            o.step()
    for a, b in zip(ours.state_dict().values(), ref.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_schedules_drive_every_part_and_state_round_trips():
    recipe = bag_recipe()
    model = bag(recipe)
    optimizer = build_optimizer(model, recipe.optimizer)
    spec = load_recipe({"schedule": {"name": "linear", "end_factor": 0.1}}).schedule
    schedule = Schedule(optimizer, spec, steps_per_epoch=6, epochs=1)
    train(model, optimizer, schedule)
    rates = [g["lr"] for part in optimizer.parts for g in part.param_groups]
    assert len(rates) == 2 and all(abs(r - 0.005) < 1e-9 for r in rates)

    clone = build_optimizer(copy.deepcopy(model), recipe.optimizer)
    clone.load_state_dict(optimizer.state_dict())
    assert [g["lr"] for g in clone.param_groups] == rates
    assert clone.parts[0].state_dict()["state"].keys() == optimizer.parts[0].state_dict()["state"].keys()


def test_sparse_embeddings_escape_penalties_and_decay():
    recipe = bag_recipe(weight_decay=0.5)
    model = bag(recipe)
    emb = model.embedding.weight
    assert sparse_parameters(model) == [emb]
    assert all(p is not emb for p in penalized_weights(model))
    before = emb.detach().clone()
    optimizer = build_optimizer(model, recipe.optimizer)
    optimizer.zero_grad()
    model(torch.tensor([[1, 2, 0]])).sum().backward()
    optimizer.step()
    untouched = [i for i in range(50) if i not in (1, 2)]
    torch.testing.assert_close(emb[untouched], before[untouched])  # no decay on rows outside the batch


def test_recipes_with_sparse_options_are_checked():
    import pytest

    from honed.errors import UserError

    with pytest.raises(UserError, match="model.sparse needs optimizer.name in adam"):
        load_recipe({"model": {"name": "bag", "sparse": True}, "optimizer": {"name": "rmsprop"}})
    for key, value in (("model.sparse", True), ("data.ngrams", 2), ("data.unique_tokens", True)):
        section, field = key.split(".")
        with pytest.raises(UserError, match=f"{key} works with model.name = bag only"):
            text = {"source": "text_files", "train": "t.csv"}  # a source that reads text settings
            load_recipe({"data": text | ({field: value} if section == "data" else {}),
                         "model": {"name": "rnn"} | ({field: value} if section == "model" else {})})
