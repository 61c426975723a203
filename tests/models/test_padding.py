"""Text models must give the same outputs however much trailing padding a batch carries."""

import pytest
import torch

from honed.models import Shape, build_model
from honed.models.layers import real_tokens
from honed.recipe import load_recipe


@pytest.mark.parametrize("model", [
    {"name": "bag", "hidden": [8]},
    {"name": "bag", "sparse": True},
    {"name": "rnn", "hidden_size": 8},
    {"name": "cnn", "channels": [4, 4], "kernel_size": 3, "activation": "sigmoid"},  # sigmoid(0) != 0
])
def test_outputs_do_not_depend_on_padding(model):
    spec = load_recipe({"model": {"embedding_dim": 6, **model}}).model
    torch.manual_seed(0)
    net = build_model(spec, Shape("tokens", 30, 2)).eval()
    tokens = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    padded = torch.cat([tokens, torch.zeros(2, 9, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(net(tokens), net(padded))
        torch.testing.assert_close(net(tokens[1:, :2]), net(padded)[1:])


def test_the_bag_export_path_pools_like_the_embedding_bag():
    from honed.models.bag import BagOfEmbeddings

    torch.manual_seed(0)
    model = BagOfEmbeddings(40, 6, [5], "relu", 0.0, 2).eval()
    x = torch.randint(1, 40, (5, 9))
    x[1, 3:], x[2, :] = 0, 0  # a short row, and an empty one
    table = model.embedding.weight.detach()
    reference = torch.stack([table[row[row != 0]].mean(0) if (row != 0).any() else torch.zeros(6) for row in x])
    with torch.no_grad():
        torch.testing.assert_close(model.pool.gathered(x), reference)
        torch.testing.assert_close(model.embedding(*real_tokens(x)), reference)


def test_real_tokens_are_the_nonzero_ids_with_row_starts():
    ids, offsets = real_tokens(torch.tensor([[3, 4, 0], [0, 0, 0], [5, 0, 0], [6, 7, 8]]))
    assert ids.tolist() == [3, 4, 5, 6, 7, 8]
    assert offsets.tolist() == [0, 2, 2, 3]
