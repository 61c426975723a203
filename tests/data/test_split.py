import numpy as np
import pytest

from honed.data.raw import RawSplit
from honed.data.split import carve
from honed.errors import UserError


def labelled(n_a: int, n_b: int, n_c: int = 0) -> RawSplit:
    y = np.array(["a"] * n_a + ["b"] * n_b + ["c"] * n_c, dtype=object)
    return RawSplit(np.arange(len(y), dtype=np.float32)[:, None], y)


def test_stratified_split_keeps_class_shares_and_is_disjoint():
    data = labelled(600, 300, 100)
    rest, carved = carve(data, 0.2, seed=3, stratify=True, what="validation")
    assert len(carved) == 200 and len(rest) == 800
    assert {c: int((carved.y == c).sum()) for c in "abc"} == {"a": 120, "b": 60, "c": 20}
    ids = np.concatenate([rest.x[:, 0], carved.x[:, 0]])
    assert sorted(ids.tolist()) == list(range(1000))


def test_rounding_goes_to_the_largest_remainders():
    _, carved = carve(labelled(5, 5, 5), 0.2, seed=0, stratify=True, what="test")
    assert len(carved) == 3 and sorted(carved.y.tolist()) == ["a", "b", "c"]


def test_same_seed_same_split_other_seed_other_split():
    data = labelled(50, 50)
    a, b, c = (carve(data, 0.3, s, True, "validation")[1].x[:, 0].tolist() for s in (1, 1, 2))
    assert a == b and a != c


def test_too_small_to_split():
    with pytest.raises(UserError, match="too few"):
        carve(labelled(1, 1), 0.2, 0, True, "validation")


def test_a_training_sample_leaves_validation_and_test_whole():
    from honed.data.build import load_raw, split_raw
    from honed.recipe import load_recipe

    def splits(**data):
        spec = load_recipe({"data": {"source": "sklearn", "name": "digits"} | data}).data
        return split_raw(load_raw(spec), spec)

    full_train, full_val, full_test = splits()
    train, val, test = splits(max_train_rows=300)
    assert len(train) == 300 and len(full_train) > 1000
    np.testing.assert_array_equal(val.x, full_val.x)
    np.testing.assert_array_equal(test.x, full_test.x)
    rows = {r.tobytes() for r in full_train.x}
    assert all(r.tobytes() in rows for r in train.x)  # a subset of the full training split
    shares = np.unique(train.y.astype(str), return_counts=True)[1] / 300
    full_shares = np.unique(full_train.y.astype(str), return_counts=True)[1] / len(full_train)
    np.testing.assert_allclose(shares, full_shares, atol=0.01)  # stratified
    assert len(splits(max_train_rows=10**6)[0]) == len(full_train)


def test_max_val_rows_caps_validation_and_the_rest_trains():
    from honed.data.build import load_raw, split_raw
    from honed.recipe import load_recipe

    def splits(**data):
        spec = load_recipe({"data": {"source": "sklearn", "name": "digits"} | data}).data
        return split_raw(load_raw(spec), spec)

    train, val, test = splits()  # 1,437 training rows in the file: 20% of them validate
    capped_train, capped_val, capped_test = splits(max_val_rows=100)
    assert len(capped_val) == 100 and len(val) == round(0.2 * (len(train) + len(val)))
    assert len(capped_train) + len(capped_val) == len(train) + len(val)  # every other row trains
    np.testing.assert_array_equal(capped_test.x, test.x)
    assert len(splits(max_val_rows=10**6)[1]) == len(val)  # a cap above 20% changes nothing


def test_a_class_with_a_single_row_trains_and_the_others_stay_stratified():
    data = labelled(400, 99, 1)  # a wine table's best grade: one row of it among the training rows
    rest, carved = carve(data, 0.2, seed=5, stratify=True, what="validation")
    assert rest.y.tolist().count("c") == 1  # never carved: it could not be in both parts
    assert len(carved) == 100 and {c: int((carved.y == c).sum()) for c in "ab"} == {"a": 80, "b": 20}
    with pytest.raises(UserError, match="2 of 3 class"):  # mostly single rows: an identifier, not a target
        carve(labelled(10, 1, 1), 0.2, 0, True, "validation")


def test_a_class_label_longer_than_the_bound_is_one_line():
    y = np.array(["a", "b"] * 5 + ["x" * 5000], dtype=object)
    with pytest.raises(UserError, match="a label of 5,000 chars, starting 'xxxxxxxxxxxxxxxxxxxx'"):
        carve(RawSplit(np.zeros((11, 1), dtype=np.float32), y), 0.2, 0, True, "validation")
