"""TokenRows: ids stored without padding, handed out as right-padded batches."""

import pytest
import torch

from honed.data.tokens import TokenRows, row_lengths

ROWS = [[5, 3, 9], [], [7], [2, 2, 2, 2, 8], [4]]


def padded(rows: list[list[int]]) -> torch.Tensor:
    """The reference: a plain right-padded matrix, as wide as its longest row (at least 1)."""
    out = torch.zeros(len(rows), max([1, *map(len, rows)]), dtype=torch.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.int64)
    return out


@pytest.mark.parametrize("key", [slice(None), slice(1, 3), slice(3, None), [3, 0], torch.tensor([4, 1, 2]),
                                 torch.tensor([True, False, False, True, False]), slice(2, 2)])
def test_indexing_pads_only_to_the_longest_selected_row(key):
    rows = TokenRows.from_lists(ROWS)
    chosen = [ROWS[i] for i in torch.arange(len(ROWS))[key].tolist()]
    got = rows[key]
    assert got.dtype == torch.int64
    if chosen:
        assert torch.equal(got, padded(chosen))
    else:
        assert len(got) == 0


def test_round_trips_and_lengths():
    rows = TokenRows.from_lists(ROWS)
    assert len(rows) == 5 and rows.shape == (5, 5) and rows.values.dtype == torch.int32
    assert torch.equal(rows[:], padded(ROWS)) and torch.equal(rows[3], torch.tensor([2, 2, 2, 2, 8]))
    again = TokenRows.from_padded(torch.cat([padded(ROWS), torch.zeros(5, 4, dtype=torch.int64)], dim=1))
    assert torch.equal(again.offsets, rows.offsets) and torch.equal(again.values, rows.values)
    assert row_lengths(rows).tolist() == [3, 0, 1, 5, 1] == row_lengths(padded(ROWS)).tolist()


def test_no_ids_at_all():
    rows = TokenRows.from_lists([[], []])
    assert torch.equal(rows[:], torch.zeros(2, 1, dtype=torch.int64))
    assert len(TokenRows.from_lists([])) == 0
