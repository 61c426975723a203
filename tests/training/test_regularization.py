import torch
from torch import nn

from honed.training.regularization import penalized_weights, penalty


def test_penalty_value_and_gradient_match_hand_derivation():
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    weights = penalized_weights(layer)
    assert len(weights) == 1 and weights[0] is layer.weight  # the bias is not penalized
    l1, l2 = 0.03, 0.2
    w = layer.weight.detach().clone()
    value = penalty(weights, l1, l2)
    assert torch.allclose(value, l1 * w.abs().sum() + l2 * (w**2).sum())
    value.backward()
    # d/dw [l1 |w| + l2 w^2] = l1 sign(w) + 2 l2 w
    assert torch.allclose(layer.weight.grad, l1 * torch.sign(w) + 2 * l2 * w)
    assert layer.bias.grad is None


def test_no_penalty_when_both_zero():
    assert penalty(penalized_weights(nn.Linear(2, 2)), 0.0, 0.0) is None
