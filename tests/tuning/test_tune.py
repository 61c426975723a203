"""honed tune: budget, pruning, failing trials, resuming, the report, and several processes on one study."""

import json
import os
import subprocess
import sys
import time

import optuna
import pytest

import honed
from honed import api
from honed.errors import UserError
from honed.recipe import load_recipe

SMALL = {"name": "small", "seed": 0, "data": {"source": "sklearn", "name": "breast_cancer"},
         "model": {"name": "mlp", "hidden": [16]}, "optimizer": {"name": "adam", "lr": 0.01},
         "train": {"epochs": 3, "batch_size": 64},
         "search": {"optimizer.lr": {"loguniform": [1e-4, 1e-1]}, "model.hidden": {"choice": [[16], [32, 16]]}}}


def trials_of(out, name="small"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}").trials


def test_a_search_writes_its_report_and_scores_the_test_split_once(tmp_path, monkeypatch):
    scored = []
    summarize = api._summarize
    monkeypatch.setattr(api, "_summarize", lambda *a, **k: scored.append(a[-1] if len(a) > 6 else k.get(
        "score_test", True)) or summarize(*a, **k))
    evaluations = []
    evaluate = api.evaluate
    monkeypatch.setattr(api, "evaluate", lambda *a, **k: evaluations.append(a) or evaluate(*a, **k))
    result = honed.tune(SMALL, budget=120, trials=5, out=tmp_path / "t")
    out = result.out
    assert not any(scored), "a trial scored the test split"
    assert len(evaluations) == 1
    for name in ("leaderboard.csv", "best.yaml", "summary.json", "tune.png", "study.db", "tune.html"):
        assert (out / name).is_file(), name
    trials = trials_of(out)
    assert len(trials) == 5
    page = (out / "tune.html").read_text()  # one page: the figure and every trial of the leaderboard
    assert page.count("data:image/png;base64,") == 1 and page.count("<tr>") == 1 + 5
    assert trials[0].params == {"optimizer.lr": 0.01, "model.hidden": "[16]"}  # the recipe as written comes first
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tune"]["best_trial"] == best.number and summary["tune"]["best_value"] == best.value
    assert summary["val"]["accuracy"] == pytest.approx(best.value)
    assert 0.5 < summary["test"]["accuracy"] <= 1.0
    # only the best trial's run directory is kept, and best.yaml reruns it exactly
    assert [p.name for p in (out / "trials").iterdir()] == [f"trial-{best.number:04d}"]
    rerun = honed.train(out / "best.yaml", ["train.checkpoint=null"], out=tmp_path / "rerun")
    assert rerun.summary["val"]["accuracy"] == pytest.approx(best.value)
    assert "search" not in (out / "best.yaml").read_text().split("metrics:")[1] or load_recipe(out / "best.yaml").search == {}
    rows = (out / "leaderboard.csv").read_text().splitlines()
    assert len(rows) == 6 and rows[0].startswith("rank,trial,state,value")


def test_a_bug_in_a_trial_is_not_swallowed(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise ZeroDivisionError("a bug, not a bad point")

    monkeypatch.setattr(api, "train", broken)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        honed.tune(SMALL, budget=60, trials=2, out=tmp_path / "t")


def test_failing_trials_are_recorded_and_the_study_goes_on(tmp_path):
    recipe = dict(SMALL, optimizer={"name": "sgd", "lr": 0.01},
                  search={"optimizer.lr": {"choice": [0.01, 1.0e12]}})
    result = honed.tune(recipe, budget=120, trials=6, out=tmp_path / "t", pruner="none")
    states = {t.state.name for t in trials_of(result.out)}
    assert states == {"COMPLETE", "FAIL"}
    failed = [r for r in result.leaderboard if r["state"] == "FAIL"]
    assert failed and all("loss became" in r["note"] for r in failed)
    assert result.best["params"]["optimizer.lr"] == 0.01


def test_a_stopped_search_resumes_where_it_was(tmp_path):
    honed.tune(SMALL, budget=120, trials=2, out=tmp_path / "t")
    result = honed.tune(SMALL, budget=120, trials=4, out=tmp_path / "t")
    assert len(trials_of(result.out)) == 4
    assert result.summary["tune"]["trials"]["total"] == 4


def test_the_budget_ends_the_search_within_one_epoch(tmp_path):
    recipe = dict(SMALL, train={"epochs": 500, "batch_size": 8})  # one trial would take about a minute
    budget = 6
    began = time.perf_counter()
    with pytest.raises(UserError, match="no trial finished within the budget of 6 s"):
        honed.tune(recipe, budget=budget, out=tmp_path / "t", pruner="none")
    elapsed = time.perf_counter() - began
    (cut,) = trials_of(tmp_path / "t")
    assert cut.state.name == "PRUNED" and cut.user_attrs["stopped"] == "stopped by the budget"
    epochs = cut.user_attrs["epochs"]
    assert 1 <= epochs < 500
    epoch = cut.user_attrs["seconds"] / epochs
    assert elapsed < budget + 2 * epoch + 3  # one epoch past the budget, plus writing the report
    assert "trial" in (tmp_path / "t" / "leaderboard.csv").read_text()


def test_a_budget_too_small_for_one_epoch_is_a_user_error_and_leaves_no_study(tmp_path):
    recipe = dict(SMALL, data={"source": "synthetic_regression", "n": 200000, "features": 20},
                  model={"name": "linear"}, train={"epochs": 2, "batch_size": 4}, search={})
    with pytest.raises(UserError, match="too small to finish one epoch"):
        honed.tune(recipe, budget=0.5, out=tmp_path / "t", started=time.perf_counter() + 1.0)
    assert not (tmp_path / "t").exists()
    with pytest.raises(UserError, match="too small; it ran out before the first trial began"):
        honed.tune(recipe, budget=0.5, out=tmp_path / "t", started=time.perf_counter() - 1.0)
    assert not (tmp_path / "t").exists()


def test_a_storage_password_is_never_written(tmp_path):
    url = "postgresql://bob:hunter2@127.0.0.1:1/optuna"  # nothing listens on port 1 (or no driver): refused
    with pytest.raises(UserError) as refused:
        honed.tune(SMALL, budget=10, storage=url, out=tmp_path / "t")
    assert "bob:***@127.0.0.1:1" in str(refused.value) and "hunter2" not in str(refused.value)
    from honed.tuning.tune import masked

    assert masked("mysql+pymysql://u:p%40ss@h/db") == "mysql+pymysql://u:***@h/db"


def test_an_unreachable_storage_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--storage sqlite:////no/such/folder/x.db: cannot open it"):
        honed.tune(SMALL, budget=10, storage="sqlite:////no/such/folder/x.db", out=tmp_path / "t")


def test_two_processes_share_one_study_through_one_database(tmp_path):
    (tmp_path / "small.json").write_text(json.dumps(SMALL))
    recipe = tmp_path / "small.yaml"
    recipe.write_text((tmp_path / "small.json").read_text())  # JSON is YAML
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "honed", "tune", str(recipe), "--budget", "120", "--trials", "8",
                               "--storage", url, "--study", "shared", "--out", str(tmp_path / f"w{i}")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    trials = optuna.load_study(study_name="shared", storage=url).trials
    assert 8 <= len(trials) <= 9  # each process stops once the study holds 8 trials
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert len({t.number for t in trials}) == len(trials)
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    owner = next(i for i in range(2) if str(tmp_path / f"w{i}") in best.user_attrs["run_dir"])
    assert "accuracy" in json.loads((tmp_path / f"w{owner}" / "summary.json").read_text())["test"]


def test_the_bundled_text_recipe_tunes_any_text_csv(text_csvs, tmp_path):
    train, test = text_csvs
    from honed.cli import resolve_recipe

    result = honed.tune(resolve_recipe("text_classification"), [f"data.train={train}", f"data.test={test}",
                        "train.epochs=2"], budget=120, trials=3, out=tmp_path / "t")
    assert result.summary["tune"]["trials"]["total"] == 3
    assert "accuracy" in result.summary["test"] and result.summary["tune"]["metric"] == "val_accuracy"
    # the recipe trains on every row: the search held 20% out to choose on, then refit the best on all of them
    assert result.summary["tune"]["refit_on_all_rows"] and result.summary["sizes"]["val"] == 0
    rows = len(__import__("pandas").read_csv(train))
    assert result.summary["sizes"]["train"] == rows
    assert "val_fraction: 0.0" in (tmp_path / "t" / "best.yaml").read_text()


def test_images_with_the_default_space(tmp_path):
    recipe = {"name": "digits", "data": {"source": "sklearn", "name": "digits"}, "model": {"name": "cnn"},
              "train": {"epochs": 1, "batch_size": 256}}
    result = honed.tune(recipe, budget=120, trials=2, out=tmp_path / "t")
    assert result.summary["tune"]["trials"]["COMPLETE"] >= 1
    assert set(result.best["params"]) >= {"optimizer.lr", "model.channels", "model.dropout"}


def test_the_simplest_trial_within_noise_of_the_top_score_is_the_one_chosen(tmp_path):
    recipe = SMALL | {"search": {"model.hidden": {"choice": [[4], [128, 128]]}, "optimizer.lr": {"choice": [0.01, 0.003]}}}
    result = honed.tune(recipe, budget=120, trials=4, out=tmp_path / "t")
    tuned = result.summary["tune"]
    trials = {t.number: t for t in trials_of(result.out) if t.state.name == "COMPLETE"}
    assert set(tuned["vs_top"]) == {str(n) for n in trials}  # every finished trial tested against the top one
    tied = [int(n) for n, text in tuned["vs_top"].items() if text == "best" or text.endswith("within noise")]
    simplest = min(tied, key=lambda n: (trials[n].user_attrs["params_count"], trials[n].user_attrs["epochs"]))
    assert tuned["best_trial"] == simplest and tuned["top_trial"] in tied
    chosen = load_recipe(result.out / "best.yaml")
    assert chosen.model.hidden == trials[simplest].params["model.hidden"] or \
        json.dumps(chosen.model.hidden) == trials[simplest].params["model.hidden"]
    assert "ci95" in result.summary["test"]  # scored once, with its intervals


def test_the_tabular_recipe_searches_a_declared_space_that_starts_from_the_recipe():
    """`honed tune tabular`: every end of the recipe's search space makes a valid recipe, and the recipe as written
    lies inside it, so the first trial measures the untuned default (a search can only choose something better
    on validation)."""
    from honed.recipe import load_recipe
    from honed.tuning.space import check_space, recipe_values, space_of

    recipe = load_recipe("tabular", ["data.train=t.csv", "data.target=y"])
    space, declared = space_of(recipe)
    assert declared and {"optimizer.lr", "model.hidden", "train.batch_size"} <= set(space)
    check_space(recipe, space)
    start = recipe_values(recipe, space)
    assert start is not None and start["train.batch_size"] == "auto" and start["model.hidden"] == "[128, 128]"


def test_a_study_remembers_its_recipe(tmp_path):
    """A changed recipe into a finished or killed search's --out would mix its trials with the old ones (best.yaml
    saying 3 epochs, its score from a 15-epoch trial): refused. The same recipe goes on (see above)."""
    out = tmp_path / "t"
    honed.tune(SMALL, budget=30, trials=1, out=out)
    with pytest.raises(UserError, match="searched another recipe"):
        honed.tune(SMALL, ["train.epochs=4"], budget=30, trials=1, out=out)
    (out / "summary.json").unlink()  # as a killed search leaves its folder
    with pytest.raises(UserError, match="searched another recipe"):
        honed.tune(SMALL, ["train.epochs=4"], budget=30, trials=1, out=out)
    assert len(trials_of(out, SMALL["name"])) == 1


def test_a_search_that_will_refit_stops_its_trials_early_enough_to_refit_within_the_budget(tmp_path):
    from honed.tuning.tune import Search

    search = Search(None, {}, "val_accuracy", tmp_path, budget=60.0, started=100.0, refit=True)
    assert search.deadline == 160.0  # nothing finished yet: nothing known to reserve
    search.finished_seconds += [4.0, 8.0]
    assert search.deadline == 160.0 - 1.25 * 8.0  # the longest trial, on every row instead of 80% of them
    search.finished_seconds.append(50.0)
    assert search.deadline == 130.0  # never more than half the budget held back
    assert Search(None, {}, "val_accuracy", tmp_path, 60.0, 100.0, refit=False).deadline == 160.0


def test_a_search_that_will_bag_keeps_time_for_that_many_typical_trials(tmp_path):
    from honed.tuning.tune import Search

    search = Search(None, {}, "val_loss", tmp_path, budget=100.0, started=0.0, bags=5)
    search.finished_seconds += [2.0, 4.0, 30.0]
    assert search.deadline == 100.0 - 5 * 4.0  # the median trial: one slow outlier does not eat the search


def test_tuning_a_table_that_trains_one_model_ends_with_its_chosen_settings_bagged(tmp_path, monkeypatch):
    """model.bags = auto trains one model per trial on large tables (here: made to, on a small one); the search's
    final model is then the chosen settings bagged over 5 validation folds, scored on the test split once, and
    best.yaml says so. Where auto already bags every trial, nothing is bagged again."""
    recipe = SMALL | {"model": {"name": "mlp", "hidden": [16], "bags": "auto"}}
    import importlib

    tuning = importlib.import_module("honed.tuning.tune")  # the module (honed.tuning.tune names the function)
    compared = []
    judge = tuning.within_noise
    monkeypatch.setattr(tuning, "within_noise", lambda study, rows, outputs: compared.append(outputs) or judge(
        study, rows, outputs))
    bagged_trials = honed.tune(recipe, budget=120, trials=2, out=tmp_path / "small")  # ~455 rows: 5 bags each
    assert bagged_trials.summary["tune"]["final_bags"] == 0 and len(bagged_trials.summary["bags"]) == 5
    # bagged trials are compared out of fold: on every row, each from the member that never trained on it
    rows = bagged_trials.summary["sizes"]["val"]
    assert rows == bagged_trials.summary["sizes"]["train"] and {len(o[1]) for o in compared[0].values()} == {rows}
    monkeypatch.setattr(api, "BAG_ROWS", 100)  # as a large table: one model per trial
    result = honed.tune(recipe, budget=120, trials=2, out=tmp_path / "large")
    tuned = result.summary["tune"]
    assert tuned["final_bags"] == 5 and len(result.summary["bags"]) == 5
    assert load_recipe(result.out / "best.yaml").model.bags == 5
    assert 0.8 < result.summary["test"]["accuracy"] <= 1.0 and "ci95" in result.summary["test"]
    assert result.best["run_dir"].endswith("best-bagged")
