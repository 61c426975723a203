import pytest
import torch

from honed.data.bundle import trim_padding
from honed.training.batches import Batches
from honed.training.distributed import World


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
        seen = torch.cat([chunks[0][1] for chunks, _ in batches.epoch()])
        assert sorted(seen.tolist()) == list(range(len(x)))
        for [(xb, yb, weight)], rows in batches.epoch():
            assert weight == 1.0 and rows == len(yb)
            assert xb.shape[1] == int(lengths[yb].max())  # trimmed to the batch's longest row
            assert torch.equal(xb, x[yb, : xb.shape[1]])


def test_bucketing_batches_texts_of_similar_length():
    x, lengths = padded_tokens(n=2000)
    y = torch.arange(len(x))

    def padding_share(bucketing):
        cells = real = 0
        for [(xb, yb, _)], _ in Batches(x, y, 32, shuffle=True, seed=0, bucketing=bucketing).epoch():
            cells, real = cells + xb.numel(), real + int(lengths[yb].sum())
        return 1 - real / cells

    assert padding_share(True) < 0.1 < 0.3 < padding_share(False)


def test_bucketing_still_shuffles_between_epochs():
    x, _ = padded_tokens()
    y = torch.arange(len(x))
    batches = Batches(x, y, 16, shuffle=True, seed=0, bucketing=True)
    first = [chunks[0][1].tolist() for chunks, _ in batches.epoch(1)]
    second = [chunks[0][1].tolist() for chunks, _ in batches.epoch(2)]
    assert first != second
    assert first == [chunks[0][1].tolist() for chunks, _ in batches.epoch(1)]  # an epoch's order is a function of it


def test_accumulated_steps_weight_chunks_by_their_share_of_the_step():
    x, y = torch.randn(50, 3), torch.arange(50)
    steps = list(Batches(x, y, 8, shuffle=True, seed=1, accumulate=3).epoch())
    assert len(steps) == Batches(x, y, 8, shuffle=True, seed=1, accumulate=3).steps_per_epoch == 3  # 7 batches
    assert [len(chunks) for chunks, _ in steps] == [3, 3, 1]
    for chunks, rows in steps:
        assert rows == sum(len(yb) for _, yb, _ in chunks)
        assert sum(w for _, _, w in chunks) == pytest.approx(1.0)
    assert [w for _, _, w in steps[1][0]] == pytest.approx([8 / 24] * 3)


def test_skipping_steps_resumes_the_same_order():
    x, y = torch.randn(40, 2), torch.arange(40)
    batches = Batches(x, y, 4, shuffle=True, seed=3)
    full = [chunks[0][1].tolist() for chunks, _ in batches.epoch(5)]
    assert [chunks[0][1].tolist() for chunks, _ in batches.epoch(5, skip_steps=6)] == full[6:]


@pytest.mark.parametrize("n,batch,world", [(40, 8, 2), (37, 8, 2), (41, 8, 3), (10, 4, 3)])
def test_worker_shares_cover_each_global_batch_once_with_weights_summing_to_workers(n, batch, world):
    x, y = torch.randn(n, 2), torch.arange(n)
    single = [chunks[0][1].tolist() for chunks, _ in Batches(x, y, batch, True, 7).epoch(1)]
    shares = [list(Batches(x, y, batch, True, 7, world=World(rank, world)).epoch(1)) for rank in range(world)]
    for k, rows in enumerate(single):
        got, weights = [], 0.0
        for rank in range(world):
            [(_, yb, w)], step_rows = shares[rank][k]
            assert step_rows == len(rows)
            if w > 0:
                got += yb.tolist()
            weights += w
        assert got == rows  # contiguous shares, in rank order: the global batch exactly, no repeats
        assert weights == pytest.approx(world)
