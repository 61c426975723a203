import torch

from honed.data.bundle import trim_padding
from honed.training.batches import Batches


def padded_tokens(n=200, width=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (n,), generator=g)
    x = torch.randint(1, 100, (n, width), generator=g)
    x[torch.arange(width) >= lengths[:, None]] = 0
    return x, lengths


def test_trim_padding_drops_only_all_padding_columns():
    x = torch.tensor([[3, 4, 0, 0, 0], [5, 0, 0, 0, 0]])
    assert trim_padding(x).tolist() == [[3, 4], [5, 0]]
    assert trim_padding(torch.zeros(2, 3, dtype=torch.long)).shape == (2, 1)
    features = torch.randn(2, 5)
    assert trim_padding(features) is features


def test_every_row_once_per_epoch_with_and_without_bucketing():
    x, lengths = padded_tokens()
    y = torch.arange(len(x))
    for bucketing in (False, True):
        batches = Batches(x, y, 16, shuffle=True, seed=0, bucketing=bucketing)
        seen = torch.cat([chunk[0][1] for chunk in batches.epoch()])
        assert sorted(seen.tolist()) == list(range(len(x)))
        for (xb, yb), in batches.epoch():
            assert xb.shape[1] == int(lengths[yb].max())  # trimmed to the batch's longest row
            assert torch.equal(xb, x[yb, : xb.shape[1]])


def test_bucketing_batches_texts_of_similar_length():
    x, lengths = padded_tokens(n=2000)
    y = torch.arange(len(x))

    def padding_share(bucketing):
        cells = real = 0
        for (xb, yb), in Batches(x, y, 32, shuffle=True, seed=0, bucketing=bucketing).epoch():
            cells, real = cells + xb.numel(), real + int(lengths[yb].sum())
        return 1 - real / cells

    assert padding_share(True) < 0.1 < 0.3 < padding_share(False)


def test_bucketing_still_shuffles_between_epochs():
    x, _ = padded_tokens()
    y = torch.arange(len(x))
    batches = Batches(x, y, 16, shuffle=True, seed=0, bucketing=True)
    first = [chunk[0][1].tolist() for chunk in batches.epoch()]
    second = [chunk[0][1].tolist() for chunk in batches.epoch()]
    assert first != second
