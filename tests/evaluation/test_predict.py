"""Batched outputs over a split: the same numbers as one big call, within a model's token budget."""

import torch
from torch import nn

from honed.data.tokens import TokenRows
from honed.evaluation import outputs_of


class MeanId(nn.Module):
    """Mean of each row's real ids; records the batch shapes it was given."""

    max_tokens_per_batch = 40

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: list[tuple[int, int]] = []

    def forward(self, tokens):
        self.seen.append(tuple(tokens.shape))
        real = (tokens != 0).float()
        return (tokens.float() * real).sum(1, keepdim=True) / real.sum(1, keepdim=True).clamp(min=1) * self.scale


def test_batches_stay_within_the_token_budget_and_cover_every_row_once():
    gen = torch.Generator().manual_seed(0)
    rows = [torch.randint(1, 9, (int(n),), generator=gen).tolist() for n in torch.randint(0, 15, (57,), generator=gen)]
    x = TokenRows.from_lists(rows)
    model = MeanId()
    out = outputs_of(model, x, batch_size=16)
    expected = torch.tensor([[sum(r) / max(1, len(r))] for r in rows])
    torch.testing.assert_close(out, expected)
    assert all(b * w <= 40 or b == 1 for b, w in model.seen) and sum(b for b, _ in model.seen) == 57
    model.max_tokens_per_batch = None
    model.seen.clear()
    torch.testing.assert_close(outputs_of(model, x, batch_size=16), expected)
    assert [b for b, _ in model.seen] == [16, 16, 16, 9]


def test_a_model_evaluated_on_a_cpu_takes_its_own_batch_size():
    x = TokenRows.from_lists([[1, 2], [3], [4, 5, 6], [7], [8]])
    model = MeanId()
    model.max_tokens_per_batch, model.eval_batch_size = None, 2  # as ImageResNet's 64: its caches' size
    expected = outputs_of(model, x, batch_size=16)
    assert [b for b, _ in model.seen] == [2, 2, 1]
    model.eval_batch_size = 64  # never more than the caller asks for
    model.seen.clear()
    torch.testing.assert_close(outputs_of(model, x, batch_size=4), expected)
    assert [b for b, _ in model.seen] == [4, 1]
