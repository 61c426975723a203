"""A table's columns as numbers (data/columns.py): the quantile transform against scikit-learn's, robust
scaling by hand, one-hot categories with rare, unseen and missing values, dates, IDs, and the whole path
from a mixed CSV with missing cells through training, saving and prediction."""

import numpy as np
import pandas as pd
import pytest
import torch

import honed
from honed.data.columns import ColumnEncoder
from honed.data.table_encoding import quantile_normal
from honed.errors import UserError


def test_the_quantile_transform_equals_scikit_learns():
    from sklearn.preprocessing import QuantileTransformer

    rng = np.random.default_rng(0)
    train = np.concatenate([rng.lognormal(0, 2, 700), np.full(200, 3.0), [1e6]])  # skew, ties, an outlier
    new = np.concatenate([rng.lognormal(0, 2, 50), [-5.0, 3.0, 1e9]])  # beyond both ends
    reference = QuantileTransformer(n_quantiles=len(train), output_distribution="normal").fit(train[:, None])
    enc = ColumnEncoder("quantile").fit(pd.DataFrame({"x": train}))
    ours = enc.transform(pd.DataFrame({"x": new}))[:, 0]
    np.testing.assert_allclose(ours, reference.transform(new[:, None])[:, 0], atol=1e-5)
    assert quantile_normal(np.array([np.median(train)]), np.quantile(train, np.linspace(0, 1, 901)))[0] == \
        pytest.approx(0.0, abs=0.01)


def test_without_scipy_the_inverse_normal_comes_from_the_standard_library_with_the_same_values(monkeypatch):
    """A bundle's client may run where scipy is not installed: statistics.NormalDist gives scipy's values."""
    import sys

    from scipy.special import ndtri

    from honed.data.table_encoding import normal_quantiles

    p = np.concatenate([[1e-7, 1e-3, 0.5, 1 - 1e-3, 1 - 1e-7], np.random.default_rng(1).uniform(size=200)])
    monkeypatch.setitem(sys.modules, "scipy.special", None)  # `from scipy.special import ndtri` raises ImportError
    np.testing.assert_allclose(normal_quantiles(p), ndtri(p), rtol=1e-12, atol=1e-12)


def test_robust_scaling_centres_on_the_median_and_clips_smoothly():
    x = np.array([0.0, 1, 2, 3, 4, 5, 6, 7, 8, 1000])
    enc = ColumnEncoder("robust").fit(pd.DataFrame({"x": x}))
    iqr = np.quantile(x, 0.75) - np.quantile(x, 0.25)
    z = (np.array([4.5, 1000.0]) - np.median(x)) / (iqr / 1.349)
    expected = z / np.sqrt(1 + (z / 3) ** 2)
    np.testing.assert_allclose(enc.transform(pd.DataFrame({"x": [4.5, 1000.0]}))[:, 0], expected, rtol=1e-6)
    assert expected[1] < 3  # the outlier lands just under the clip, not at ~500


def test_categories_one_hot_with_rare_unseen_and_missing_values():
    train = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 3 + ["z"] + [None, " "]})  # z is rare; None and blank missing
    enc = ColumnEncoder(min_count=2).fit(train)
    assert enc.output_names == ["c=a", "c=b", "c=other", "c=missing"] and enc.output_columns == ["c"] * 4
    dotted = ColumnEncoder().fit(pd.DataFrame({"a.b": ["x", "y"], "when": ["2024-01-01", None]}))
    assert dotted.output_columns == ["when"] * 5 + ["a.b", "a.b", "when"]  # date parts, one-hot, missing flag
    out = enc.transform(pd.DataFrame({"c": ["a", "b", "z", "never seen", np.nan, " a "]}))
    np.testing.assert_array_equal(out, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1],
                                        [1, 0, 0, 0]])
    common = ColumnEncoder().fit(pd.DataFrame({"c": ["a", "b"] * 5}))  # no rare value, no missing cell
    np.testing.assert_array_equal(common.transform(pd.DataFrame({"c": ["new", None]})), [[0, 0], [0, 0]])


def test_missing_numbers_sit_at_the_centre_with_an_indicator():
    enc = ColumnEncoder("standard").fit(pd.DataFrame({"x": [1.0, 2.0, np.nan, 3.0]}))
    assert enc.output_names == ["x", "x=missing"] and enc.numeric_dim == 1
    out = enc.transform(pd.DataFrame({"x": [np.nan, 2.0, np.inf]}))
    np.testing.assert_allclose(out, [[0, 1], [0, 0], [0, 1]])  # +inf is no number: treated as missing


def test_types_are_inferred_and_can_be_set():
    n = 40
    frame = pd.DataFrame({"id": np.arange(100, 100 + n), "key": [f"k{i}" for i in range(n)],
                          "when": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
                          "flag": [True, False] * (n // 2), "zip": [10001, 10002] * (n // 2),
                          "empty": [None] * n, "amount": np.linspace(0, 1, n)})
    enc = ColumnEncoder("none", types={"zip": "category"}).fit(frame)
    kinds = {c.name: c.kind for c in enc.columns}
    assert kinds == {"when": "date", "flag": "numeric", "zip": "category", "amount": "numeric"}
    assert sorted(enc.dropped) == ["empty", "id", "key"]
    parts = enc.transform(pd.DataFrame({"when": ["2024-03-05"], "flag": [True], "zip": [10002], "amount": [0.5]}))
    assert parts[0, :5].tolist() == [2024, 3, 5, 1, 19787]  # year, month, day, Tuesday, days since 1970
    with pytest.raises(UserError, match="data.column_types: 'nope' is not a column"):
        ColumnEncoder(types={"nope": "drop"}).fit(frame)


def test_timestamps_with_zones_read_in_utc_and_give_the_hour():
    # a police stop table's "2017-01-01T06:00:42Z" beside plain and offset times (the same instant three ways)
    stamps = ["2017-01-01T06:00:42Z", "2017-01-01 06:00:42", "2017-01-01T00:00:42-06:00", "2017-03-05 18:30:00Z"]
    enc = ColumnEncoder("none").fit(pd.DataFrame({"when": stamps * 5}))
    assert enc.columns[0].kind == "date" and enc.output_names[-1] == "when.hour" and enc.numeric_dim == 6
    parts = enc.transform(pd.DataFrame({"when": ["2017-01-01T00:00:42-06:00", "2017-03-05T18:30:00+00:00", None]}))
    # year, month, day, weekday (Sunday), days since 1970, hour with minutes and seconds as its fraction
    np.testing.assert_allclose(parts[0], [2017, 1, 1, 6, 17167, 6 + 42 / 3600], rtol=1e-6)
    np.testing.assert_allclose(parts[1], [2017, 3, 5, 6, 17230, 18.5], rtol=1e-6)
    assert (parts[2] == 0).all()  # missing: every part at the centre
    days = ColumnEncoder("none").fit(pd.DataFrame({"when": ["2024-01-01", "2024-02-03T00:00:00"] * 5}))
    assert days.numeric_dim == 5  # midnight only: no hour part
    restored = ColumnEncoder.from_state(enc.state())  # the part survives saving
    rows = pd.DataFrame({"when": stamps})
    np.testing.assert_array_equal(restored.transform(rows), enc.transform(rows))


def mixed_table(n: int, seed: int) -> pd.DataFrame:
    """The label follows a category and a number; cells are missing at random; an ID column rides along."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "lima", "oslo", "kyiv"], n)
    income = rng.lognormal(3, 1, n)
    label = np.where((city == "oslo") | (income > np.exp(3.5)), "yes", "no")
    frame = pd.DataFrame({"row_id": [f"r{seed}-{i}" for i in range(n)], "city": city, "income": income,
                          "noise": rng.normal(size=n), "label": label})
    for column in ("city", "income"):
        frame.loc[rng.random(n) < 0.05, column] = None
    return frame


def test_a_mixed_table_with_missing_cells_trains_saves_and_predicts(tmp_path):
    mixed_table(600, 0).to_csv(tmp_path / "train.csv", index=False)
    mixed_table(200, 1).to_csv(tmp_path / "test.csv", index=False)
    run = honed.train("tabular", [f"data.train={tmp_path / 'train.csv'}", f"data.test={tmp_path / 'test.csv'}",
                                  "data.target=label", "train.epochs=15", "train.report=false"], out=tmp_path / "run")
    assert run.summary["task"] == "binary" and run.summary["test"]["accuracy"] >= 0.9
    _, _, pre = honed.load_run(run.path)
    assert pre.column_encoder.dropped == ["row_id"] and pre.feature_names[:2] == ["income", "noise"]
    # reordered and extra columns, an unseen city, missing cells: answered, not refused
    rows = pd.DataFrame({"extra": [1, 2, 3], "noise": [0.0, 0.0, None], "income": [1.0, None, 1e4],
                         "city": ["oslo", "atlantis", None]})
    frame = honed.predict(run.path, rows)
    assert frame["prediction"].tolist()[0] == "yes" and frame["prediction"].tolist()[2] == "yes"
    assert len(frame) == 3
    with pytest.raises(UserError, match="city"):
        honed.predict(run.path, rows.drop(columns=["city"]))
    # rows join back: the ID column training dropped is copied in front, or the one named
    test = pd.read_csv(tmp_path / "test.csv").iloc[:5]
    assert honed.predict(run.path, test)["row_id"].tolist() == test["row_id"].tolist()
    assert honed.predict(run.path, test, id_column="noise").columns.tolist()[:2] == ["noise", "prediction"]
    with pytest.raises(UserError, match="--id-column 'nope' is not a column"):
        honed.predict(run.path, test, id_column="nope")


def test_a_target_with_missing_cells_is_one_line(tmp_path):
    frame = mixed_table(50, 0)
    frame.loc[7, "label"] = None
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(UserError, match=r"'label' .* 1 missing cell\(s\) \(first at line 9\)"):
        honed.train("tabular", [f"data.path={tmp_path / 't.csv'}", "data.target=label"], out=tmp_path / "run")


@pytest.fixture
def mixed_run(tmp_path):
    mixed_table(400, 0).to_csv(tmp_path / "train.csv", index=False)
    mixed_table(80, 1).to_csv(tmp_path / "test.csv", index=False)
    return honed.train("tabular", [f"data.train={tmp_path / 'train.csv'}", f"data.test={tmp_path / 'test.csv'}",
                                   "data.target=label", "train.epochs=6", "model.ensemble=4", "train.report=false"],
                       out=tmp_path / "mixed").path


def test_the_ensemble_trains_each_member_and_answers_their_mean():
    import torch

    from honed.models import Shape, build_model
    from honed.recipe import load_recipe
    from honed.training.losses import per_member

    spec = load_recipe({"model": {"name": "mlp", "hidden": [8], "ensemble": 3, "numeric_embedding": "periodic"}}).model
    model = build_model(spec, Shape("features", 5, 4, numeric_dim=2))
    x, y = torch.randn(7, 5), torch.randint(0, 4, (7,))
    members = model.train()(x)
    assert members.shape == (7, 3, 4)
    ce = torch.nn.CrossEntropyLoss()
    expected = sum(ce(members[:, k], y) for k in range(3)) / 3
    assert torch.allclose(per_member(ce, 3)(members, y), expected)
    with torch.no_grad():  # evaluated: the members' mean (no dropout here, so the same members)
        assert torch.allclose(model.eval()(x), model.train()(x).mean(dim=1), atol=1e-6)


def test_column_attributions_add_up_and_the_server_takes_text_and_nulls(mixed_run):
    pytest.importorskip("captum")
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from honed.export import load_predictor
    from honed.serve import create_app

    rows = pd.DataFrame({"city": ["oslo", None], "income": [None, 90.0], "noise": [0.1, 0.2]})
    result = honed.explain(mixed_run, rows, steps=32)
    for it in result.items:
        assert it["names"] == ["city", "income", "noise"]  # one attribution per column, parts folded back
        assert sum(it["attributions"]) == pytest.approx(it["output"] - it["baseline_output"], rel=0.05, abs=1e-3)
    assert result.items[0]["input"] == {"city": "oslo", "income": None, "noise": 0.1}
    client = TestClient(create_app(load_predictor(mixed_run)))
    meta = client.get("/metadata").json()["input"]
    assert meta["types"] == {"city": "category", "income": "numeric", "noise": "numeric"}
    body = {"rows": [{"city": "atlantis", "income": None, "noise": 0.0, "row_id": "x"}, {"city": "oslo",
                                                                                         "income": 1.0, "noise": 0}]}
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200
    assert [p["prediction"] for p in answer.json()["predictions"]] == \
        honed.predict(mixed_run, pd.DataFrame(body["rows"]))["prediction"].tolist()
    refused = client.post("/predict", json={"rows": [{"city": "oslo", "noise": 0}]})
    assert refused.status_code == 422 and "missing income" in refused.json()["error"]
    row = client.get("/openapi.json").json()["components"]["schemas"]["PredictRequest"]["properties"]["rows"]["items"]
    assert row["required"] == ["city", "income", "noise"] and row["properties"]["income"]["type"] == ["number", "null"]
    city = row["properties"]["city"]["description"]  # /docs shows the values, most frequent first
    assert city.startswith("category (") and all(name in city for name in ("kyiv", "lima", "oslo", "paris"))
    from honed.report import report

    page = report(mixed_run).read_text()  # the run's page: a row per column with its type and missing share
    assert "<td class=\"l\">city</td><td class=\"l\">category</td>" in page and "row_id" in page
    from honed.export.onnx import export_onnx

    exported = export_onnx(mixed_run)  # the encoding travels in the bundle (tests/export/test_client.py runs it)
    assert exported["check"]["max_abs_difference"] < 1e-4 and exported["input"]["columns"] == ["city", "income", "noise"]
    assert exported.path == mixed_run / "onnx"  # every command's result names its folder


def test_train_steps_sets_the_epochs_from_the_rows():
    from honed.api import sized_for_rows
    from honed.recipe import load_recipe

    recipe = load_recipe({"train": {"steps": 1000, "epochs": 60, "batch_size": 512}})
    assert sized_for_rows(recipe, 13_210).train.epochs == 39  # 26 steps per epoch
    assert sized_for_rows(recipe, 26_049).train.epochs == 20  # 51
    assert sized_for_rows(recipe, 300).train.epochs == 60  # one step per epoch: capped by train.epochs
    resolved = sized_for_rows(recipe, 13_210)
    assert resolved.train.steps is None and sized_for_rows(resolved, 99).train.epochs == 39  # rerun repeats it


def test_auto_batch_size_gives_small_tables_about_16_steps_per_epoch_within_32_to_512():
    from honed.api import sized_for_rows
    from honed.recipe import load_recipe

    recipe = load_recipe({"train": {"steps": 1000, "epochs": 60, "batch_size": "auto"}})
    sizes = {rows: sized_for_rows(recipe, rows).train.batch_size for rows in (100, 700, 1_100, 3_300, 13_210, 26_049)}
    assert sizes == {100: 32, 700: 32, 1_100: 64, 3_300: 128, 13_210: 512, 26_049: 512}
    small = sized_for_rows(recipe, 1_100)
    assert small.train.epochs == 56 and small.train.steps is None  # 18 steps of 64 rows per epoch: 1000 steps
    assert sized_for_rows(small, 5).train.batch_size == 64  # the run's recipe holds the resolved size
    assert sized_for_rows(recipe, 13_210, images=True).train.batch_size == 128  # images: at most 128
    assert sized_for_rows(recipe, 1_100, images=True).train.batch_size == 64


def test_auto_numeric_embedding_is_none_then_piecewise_then_periodic_by_training_rows():
    from honed.api import sized_for_rows
    from honed.recipe import load_recipe

    recipe = load_recipe({"data": {"source": "tabular", "scaling": "quantile"},
                          "model": {"name": "mlp", "numeric_embedding": "auto"}})
    chosen = {rows: sized_for_rows(recipe, rows).model.numeric_embedding for rows in (1_999, 2_000, 9_999, 10_000)}
    assert chosen == {1_999: "none", 2_000: "piecewise", 9_999: "piecewise", 10_000: "periodic"}
    standard = load_recipe({"data": {"source": "tabular"}, "model": {"name": "mlp", "numeric_embedding": "auto"}})
    assert sized_for_rows(standard, 5_000).model.numeric_embedding == "periodic"  # bins need the quantile scale
    with pytest.raises(ValueError, match="resolved first"):  # a model is never built from an unresolved choice
        from honed.models import Shape, build_model

        build_model(recipe.model, Shape("features", 3, 2, numeric_dim=3))


def test_piecewise_embedding_is_each_numbers_position_in_equally_filled_bins():
    from scipy.stats import norm

    from honed.models.mlp import PiecewiseLinearEmbedding

    torch.manual_seed(0)
    bins, dim = 4, 3
    embed = PiecewiseLinearEmbedding(2, bins, dim)
    inner = norm.ppf([0.25, 0.5, 0.75])  # the quantile transform's bins are the standard normal's quartiles
    x = torch.tensor([[inner[0], 0.3], [-5.2, 5.2]], dtype=torch.float32)
    edges = np.array([-5.2, *inner, 5.2])
    expected = []
    for row in x.numpy():
        columns = []
        for f, value in enumerate(row):
            position = np.clip((value - edges[:-1]) / np.diff(edges), 0, 1)  # 1 left of the number, 0 right of it
            weights, bias = embed.weight[f].detach().numpy(), embed.bias[f].detach().numpy()
            columns.append(np.concatenate([[value], np.maximum(position @ weights + bias, 0)]))
        expected.append(np.concatenate(columns))
    np.testing.assert_allclose(embed(x).detach().numpy(), np.array(expected), rtol=1e-5, atol=1e-6)
    position = ((x[0, 1] - embed.left) / embed.width).clamp(0, 1)
    assert position.tolist()[:2] == [1.0, 1.0] and 0 < position[2] < 1 and position[3] == 0  # 0.3: inside bin 3


def test_piecewise_embedding_needs_the_quantile_scale():
    from honed.recipe import load_recipe

    with pytest.raises(UserError, match="model.numeric_embedding = piecewise .* data.scaling = quantile"):
        load_recipe({"data": {"source": "tabular", "scaling": "standard"},
                     "model": {"name": "mlp", "numeric_embedding": "piecewise"}})


def test_a_table_too_wide_for_its_embeddings_and_ensemble_is_refused_before_allocating():
    from honed.models import Shape, build_model
    from honed.recipe import load_recipe

    spec = load_recipe({"model": {"name": "mlp", "hidden": [8], "ensemble": 8, "numeric_embedding": "periodic",
                                  "numeric_dim": 64}}).model
    with pytest.raises(UserError, match=r"5,000 numbers embedded 65 wide\) for 8 ensemble member\(s\)"):
        build_model(spec, Shape("features", 5_000, 2, numeric_dim=5_000))  # 2.6 million values per row
    assert build_model(spec, Shape("features", 50, 2, numeric_dim=50)) is not None


def test_constant_columns_are_dropped_but_not_copied_beside_predictions(tmp_path):
    frame = mixed_table(300, 0)
    frame["version"] = 3  # one value on every training row
    frame.to_csv(tmp_path / "t.csv", index=False)
    run = honed.train("tabular", [f"data.path={tmp_path / 't.csv'}", "data.target=label", "train.epochs=2",
                                  "train.steps=null", "train.report=false"], out=tmp_path / "run")
    _, _, pre = honed.load_run(run.path)
    assert pre.column_encoder.dropped == ["row_id", "version"] and pre.column_encoder.ids == ["row_id"]
    assert "version" not in pre.feature_names
    assert honed.predict(run.path, frame.head(3)).columns.tolist()[0] == "row_id"
    assert "version" not in honed.predict(run.path, frame.head(3)).columns
