"""RowSparseAdam must step exactly as torch.optim.SparseAdam does (the reference)."""

import pytest
import torch
from torch import nn

from honed.training.sparse_adam import RowSparseAdam, summed_rows


def steps(optimizer_class, coalesce=False, n=5, **options):
    torch.manual_seed(0)
    table = nn.Embedding(30, 4, sparse=True)
    optimizer = optimizer_class(table.parameters(), lr=0.1, **options)
    g = torch.Generator().manual_seed(1)
    for _ in range(n):
        ids = torch.randint(0, 12, (6, 5), generator=g)  # repeats within and across rows
        optimizer.zero_grad()
        (table(ids) ** 2).sum().backward()
        if coalesce:
            table.weight.grad = table.weight.grad.coalesce()
        optimizer.step()
    return table, optimizer


@pytest.mark.parametrize("options", [{}, {"betas": (0.5, 0.9), "eps": 1e-3}, {"maximize": True}])
@pytest.mark.parametrize("coalesce", [False, True])
def test_same_weights_and_moments_as_sparse_adam(options, coalesce):
    ours, our_opt = steps(RowSparseAdam, coalesce, **options)
    ref, ref_opt = steps(torch.optim.SparseAdam, coalesce, **options)
    torch.testing.assert_close(ours.weight, ref.weight)
    ours_state, ref_state = our_opt.state[ours.weight], ref_opt.state[ref.weight]
    assert ours_state["step"] == ref_state["step"] == 5
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(ours_state[key], ref_state[key])
    assert torch.equal(ours.weight[20:], ref.weight[20:])  # untouched rows never move


def test_state_moves_between_the_two():
    ref, ref_opt = steps(torch.optim.SparseAdam, n=3)
    ours = RowSparseAdam(ref.parameters(), lr=0.1)
    ours.load_state_dict(ref_opt.state_dict())
    assert ours.state[ref.weight]["step"] == 3


def test_summed_rows_adds_repeats():
    grad = torch.sparse_coo_tensor(torch.tensor([[3, 1, 3]]), torch.tensor([[1.0, 2.0], [5.0, 5.0], [10.0, 20.0]]),
                                   (6, 2), check_invariants=True)
    rows, values = summed_rows(grad)
    assert rows.tolist() == [1, 3]
    assert values.tolist() == [[5.0, 5.0], [11.0, 22.0]]


def test_dense_gradients_get_sparse_adams_message():
    weight = nn.Parameter(torch.ones(3, 2))
    weight.grad = torch.ones(3, 2)
    with pytest.raises(RuntimeError, match="does not support dense gradients"):
        RowSparseAdam([weight]).step()


def test_row_wise_state_steps_as_adam_without_momentum_when_a_row_shares_one_gradient_size():
    """RowWiseSparseAdam keeps one mean squared gradient per row: where every entry of a row's gradient has the
    same size, that equals Adam's per-weight second moment, so with every row in every batch it must step as
    torch.optim.Adam with beta1 = 0 does (the reference); rows outside a batch keep weights and state."""
    from honed.training.sparse_adam import RowWiseSparseAdam

    torch.manual_seed(0)
    ours, ref = nn.Embedding(8, 3, sparse=True), nn.Embedding(8, 3)
    ref.weight.data.copy_(ours.weight.data)
    opt = RowWiseSparseAdam(ours.parameters(), lr=0.05, betas=(0.9, 0.99), eps=1e-6)
    ref_opt = torch.optim.Adam(ref.parameters(), lr=0.05, betas=(0.0, 0.99), eps=1e-6)
    signs = torch.tensor([1.0, -1.0, 1.0])
    g = torch.Generator().manual_seed(2)
    for _ in range(6):
        ids = torch.tensor([[0, 1, 2, 3], [3, 2, 5, 4]])  # 6 and 7 never seen; 2 and 3 twice
        per_row = torch.randn(8, 1, generator=g)  # one size per row, signs vary within it
        for table, optimizer in ((ours, opt), (ref, ref_opt)):
            optimizer.zero_grad()
            (table(ids) * per_row[ids] * signs).sum().backward()
            optimizer.step()
    torch.testing.assert_close(ours.weight[:6], ref.weight[:6])
    assert torch.equal(ours.weight[6:], ref.weight[6:])  # untouched: both still at their start
    assert opt.state[ours.weight]["row_sq"].shape == (8,)
    assert opt.state[ours.weight]["row_sq"][6:].eq(0).all()


def test_row_wise_state_is_a_recipe_choice_for_adam_only():
    from honed.errors import UserError
    from honed.recipe import load_recipe
    from honed.training.optimizers import build_optimizer
    from honed.training.sparse_adam import RowWiseSparseAdam

    recipe = load_recipe({"optimizer": {"name": "adam", "sparse_state": "row"}})
    model = nn.Sequential(nn.Embedding(10, 4, sparse=True), nn.Linear(4, 1))
    parts = build_optimizer(model, recipe.optimizer).parts
    assert [type(o) for o in parts] == [torch.optim.Adam, RowWiseSparseAdam]
    with pytest.raises(UserError, match="sparse_state: row is for adam and adamw"):
        load_recipe({"optimizer": {"name": "sgd", "sparse_state": "row"}})
