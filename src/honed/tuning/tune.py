"""`honed tune`: a budgeted search over a recipe with Optuna.

Each trial is an ordinary `honed.train` run of the recipe with drawn values set, scored on
the validation split only. TPE proposes the values; Hyperband (or successive halving) stops
trials whose per-epoch validation score trails, so the budget goes to promising ones. The
study lives in a database (SQLite in the output folder by default), so a stopped search
resumes, and several processes on several machines can share one study through a common
database URL. The test split is scored once, for the best trial, after the search.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import random
import shutil
import socket
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from honed import runfiles
from honed.errors import UserError
from honed.files import hold, releasing
from honed.evaluation import lower_is_better
from honed.recipe import Recipe, dump_recipe, load_recipe, variant
from honed.run.rundir import timestamped
from honed.training.hooks import Hook
from honed.tuning import ensemble
from honed.tuning.space import (ENCODER_KEY, Space, affordable, apply, check_space, decode, recipe_values, space_of,
                                suggest)

log = logging.getLogger("honed")
PRUNERS = ("hyperband", "halving", "none")
RACES = ("already exists", "locked", "UNIQUE constraint")  # errors of processes opening one new database together


class BudgetTooSmall(Exception):
    """The budget ran out before the first trial finished one epoch."""


class TrialFailed(Exception):
    """A trial broke (NaN loss, invalid combination, ...): recorded, and the study goes on."""


@dataclass
class TuneResult:
    out: Path
    study: str
    storage: str
    best: dict | None
    leaderboard: list[dict]
    summary: dict

    @property
    def path(self) -> Path:
        """The folder the command wrote (every result names its folder `.path`, as a run does)."""
        return self.out


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise UserError("honed tune needs Optuna: pip install 'honed[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # honed logs one line per trial itself
    return optuna


def metric_key(metric: str | None, recipe: Recipe, task_is_regression: bool) -> str:
    """The validation key a search optimizes, e.g. val_accuracy."""
    if metric is None:
        es, target = recipe.train.early_stopping, recipe.train.target
        metric = es.monitor if es else target.metric if target else ("loss" if task_is_regression else "accuracy")
    return metric if metric.startswith("val_") else f"val_{metric}"


class TrialReport(Hook):
    """Reports each epoch's validation score to Optuna; stops a trial that is pruned or out of time."""

    def __init__(self, trial, key: str, search) -> None:
        self.trial, self.key, self.search = trial, key, search
        self.pruned_at = 0
        self.out_of_time = False
        self.curve: list[dict] = []

    def on_step_end(self, trainer, loss) -> None:
        if not self.search.epochs_done and time.perf_counter() > self.search.deadline:
            done, total = trainer.epoch_step, trainer.batches.steps_per_epoch
            spent = time.perf_counter() - self.search.started
            need = spent / max(done, 1) * total
            raise BudgetTooSmall(f"--budget {self.search.budget:g}: too small to finish one epoch (the first trial "
                                 f"had done {done} of {total} steps of epoch 1); give at least about "
                                 f"{need * 1.5:.0f} s, or a smaller data set or model")

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.search.epochs_done += 1
        value = record.get(self.key)
        if value is None and not any(k.startswith("val_") for k in record):  # not validated (train.val_every)
            return
        if value is None:
            raise UserError(f"--metric {self.key}: not measured; the run records "
                            f"{', '.join(k for k in record if k.startswith('val_'))}")
        self.curve.append({"epoch": record["epoch"], "value": value})
        self.trial.report(value, record["epoch"])
        if self.trial.should_prune():
            self.pruned_at = record["epoch"]
            trainer.stop_reason = f"pruned by the search at epoch {record['epoch']}"
        elif time.perf_counter() > self.search.deadline and record["epoch"] < trainer.recipe.train.epochs:
            self.out_of_time = True
            trainer.stop_reason = "stopped: the search's budget ran out"


REFIT_SCALE = 1.25  # the refit trains on every row; the trials on 80% of them (SEARCH_VALIDATION)
# A recipe that leaves model.bags to honed (auto) and whose trials each train one model (large tables) gets the
# chosen settings bagged over this many validation folds as its final model: every row trains, and the mean of
# models that saw different rows varies less than any one. Holdouts carved from the shared tables' training
# files: housing RMSE 0.465 -> 0.456; census income -0.14 to +0.20 point over three settings (within its noise).
FINAL_BAGS = 5


class Search:
    """The objective Optuna calls once per trial."""

    def __init__(self, base: Recipe, space: Space, key: str, out: Path, budget: float, started: float,
                 refit: bool = False, bags: int = 0) -> None:
        self.base, self.space, self.key, self.out = base, space, key, out
        self.budget, self.started, self.refit = budget, started, refit
        self.bags = bags  # the final model's bags (0: the chosen trial's own model); 0 once a trial bagged itself
        self.finished_seconds: list[float] = []  # each finished trial's time: what the refit will cost
        self.epochs_done = 0
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        # each finished trial's validation outputs, for the report's paired tests (this process's trials only)
        self.val_outputs: dict[int, tuple] = {}

    @property
    def deadline(self) -> float:
        """When trials stop: the budget's end, less the time the final model will take (a refit on every row:
        the longest finished trial, scaled to all rows; a bag: that many of a typical trial), so the command ends
        within its --budget."""
        return self.started + self.budget - min(self.final_cost(), self.budget / 2)

    def final_cost(self) -> float:
        """Seconds the final model is expected to take, from the finished trials."""
        if not self.finished_seconds:
            return 0.0
        if self.refit:
            return REFIT_SCALE * max(self.finished_seconds)
        return self.bags * statistics.median(self.finished_seconds)  # bag_fits checks the chosen trial's own

    def __call__(self, trial) -> float:
        from honed import api
        import optuna

        params = suggest(trial, self.space)
        run_dir = self.out / "trials" / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        trial.set_user_attr("worker", self.worker)
        hook = TrialReport(trial, self.key, self)
        began = time.perf_counter()
        try:
            run = api.train(apply(self.base, params), out=run_dir, hooks=[hook], score_test=False)
        except BudgetTooSmall:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        except (UserError, MemoryError, torch.OutOfMemoryError) as e:  # what a drawn point can meet: a diverging
            # rate, a model too large for this machine; recorded, the study goes on. Anything else is a bug and
            # keeps its traceback
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            trial.set_user_attr("error", message)
            shutil.rmtree(run_dir, ignore_errors=True)
            log.info(f"trial {trial.number}: failed: {message}")
            raise TrialFailed(message) from None
        finally:
            release_memory()
        trial.set_user_attr("curve", hook.curve)
        trial.set_user_attr("epochs", run.summary["epochs_run"])
        trial.set_user_attr("seconds", round(time.perf_counter() - began, 2))
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        if hook.pruned_at or hook.out_of_time:
            reason = f"pruned at epoch {hook.pruned_at}" if hook.pruned_at else "stopped by the budget"
            trial.set_user_attr("stopped", reason)
            log.info(f"trial {trial.number}: {reason} ({shown})")
            raise optuna.TrialPruned(reason)
        value = run.summary["val"][self.key.removeprefix("val_")]
        trial.set_user_attr("params_count", run.summary["params"])
        if run.summary.get("bags"):  # model.bags = auto bagged the trials themselves (smaller tables): no final bag
            self.bags = 0
        self.finished_seconds.append(time.perf_counter() - began)
        self.keep_val_outputs(trial.number, apply(self.base, params), run)
        log.info(f"trial {trial.number}: {self.key} {value:.4f} after {run.summary['epochs_run']} epochs "
                 f"in {time.perf_counter() - began:.1f} s ({shown})")
        return value


    def keep_val_outputs(self, number: int, recipe: Recipe, run) -> None:
        """The outputs the trial's validation score came from, for the tie test: a bag's out-of-fold outputs
        (each row from the member that never trained on it; the whole bag has seen every row), else the model's
        on the validation rows."""
        from honed.data import build_data
        from honed.evaluation import outputs_of

        bundle = build_data(recipe.data)  # the trial's own data set, kept in memory by reuse_built_data
        if run.out_of_fold is not None:
            outputs, labels = run.out_of_fold
            self.val_outputs[number] = (outputs, labels.cpu(), bundle.task, "out of fold")
        elif run.model is not None and bundle.val is not None:
            self.val_outputs[number] = (outputs_of(run.model, bundle.val.x), bundle.val.y.cpu(), bundle.task,
                                        "validation split")


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def masked(url: str) -> str:
    """A database URL as honed writes it anywhere (logs, errors, summary.json, tune.html): the password as ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL sqlalchemy can parse: show its scheme alone
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"


def without_password(text: str, url: str) -> str:
    """`text` (a driver's error line) with the URL's password, if any, replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001
        return text
    # a password of a few characters would be "found" inside ordinary words; it is not worth hiding there
    return text.replace(str(password), "***") if password and len(str(password)) >= 4 else text


def open_storage(optuna, url: str):
    """An Optuna RDB storage; a bad or unreachable URL is a user error."""
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
                warnings.simplefilter("ignore")
                # heartbeats let a restarted search mark the trials of a killed process as failed
                return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=30, grace_period=120)
        except Exception as e:  # noqa: BLE001 - sqlalchemy/driver errors of every kind mean the same to a user
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            if attempt < 4 and any(w in reason for w in RACES):  # another process is creating the same tables
                time.sleep(0.5 + random.random())
                continue
            raise UserError(f"--storage {masked(url)}: cannot open it ({without_password(reason, url)})") from None


def make_pruner(optuna, name: str, epochs: int):
    if name not in PRUNERS:
        raise UserError(f"--pruner {name!r} is not allowed; allowed: {', '.join(PRUNERS)}")
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


SEARCH_VALIDATION = 0.2  # share of the training rows a search holds out when the recipe holds out none


def tune(recipe, overrides=(), *, budget: float = 600.0, trials: int | None = None, storage: str | None = None,
         study: str | None = None, out=None, metric: str | None = None, pruner: str = "hyperband",
         started: float | None = None) -> TuneResult:
    """Search the recipe's space within `budget` seconds (from `started`); write the report to `out`."""
    started = time.perf_counter() if started is None else started
    optuna = import_optuna()
    if budget <= 0:
        raise UserError(f"--budget {budget:g}: give a positive number of seconds")
    if trials is not None and trials < 1:
        raise UserError(f"--trials {trials}: give at least 1")
    user = load_recipe(recipe, overrides)
    refit = user.data.val_fraction == 0
    if refit:  # a recipe that trains on every row; a search needs rows to choose on, then refits on them all
        user = load_recipe(user, [f"data.val_fraction={SEARCH_VALIDATION}"])
        log.info(f"tune: the recipe holds out no validation rows (data.val_fraction = 0); the search holds out "
                 f"{SEARCH_VALIDATION:.0%} of the training rows to choose on, then refits the best on every row")
    space, declared = space_of(user)
    check_space(user, space)
    space = affordable(user, space, budget)
    from honed.data import reuse_built_data

    with reuse_built_data(), releasing():  # trials share one in-memory data set; --out is held until the end
        return _search(optuna, user, space, declared, metric, budget, trials, storage, study, out, pruner, started,
                       refit)


def _search(optuna, user: Recipe, space: Space, declared: bool, metric, budget: float, trials, storage, study, out,
            pruner: str, started: float, refit: bool = False) -> TuneResult:
    base = load_recipe(user, ["train.checkpoint=null"])  # trials are short-lived: no checkpoints
    key = metric_key(metric, user, task_is_regression=_task_of(user) == "regression")
    direction = "minimize" if lower_is_better(key) else "maximize"
    out = Path(out) if out else timestamped(f"{user.name}-tune")
    created_out = not out.exists()
    store = open_storage(optuna, storage) if storage else None  # a bad URL fails before anything is written
    out.mkdir(parents=True, exist_ok=True)
    hold(out)  # one search writes a folder at a time (workers sharing a --storage each have their own --out)
    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    store = store or open_storage(optuna, url)
    name = study or user.name
    is_new = name not in [s.study_name for s in optuna.get_all_study_summaries(store)]
    # processes sharing a --storage each draw their own random trials; one process alone repeats itself
    seed = user.seed if not storage else int.from_bytes(hashlib.sha256(
        f"{user.seed}/{socket.gethostname()}/{os.getpid()}".encode()).digest()[:4], "little")
    the_study = optuna.create_study(storage=store, study_name=name, direction=direction, load_if_exists=True,
                                    sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                                       n_startup_trials=5, constant_liar=True),
                                    pruner=make_pruner(optuna, pruner, user.train.epochs))
    if the_study.direction.name.lower() != direction:
        raise UserError(f"--study {name}: this study {the_study.direction.name.lower()}s, "
                        f"but {key} should be {direction}d; use another --study")
    fingerprint = hashlib.sha256(dump_recipe(base).encode()).hexdigest()[:16]
    searched = the_study.user_attrs.get("recipe")
    if searched is not None and searched != fingerprint:
        raise UserError(f"--study {name}: this study searched another recipe (other settings than this one's); its "
                        "trials would be mixed with these: choose another --study or --out")
    if is_new:
        the_study.set_user_attr("recipe", fingerprint)
        the_study.set_user_attr("metric", key)
        the_study.set_user_attr("space_declared", declared)
        start = recipe_values(user, space)
        if start is not None:  # measure the recipe as written first
            the_study.enqueue_trial(start, user_attrs={"origin": "the recipe as written"})
            encoders = [v for v in (space[ENCODER_KEY].choice if ENCODER_KEY in space else []) if v is not None]
            if encoders and start.get(ENCODER_KEY) is None:  # then with sentence vectors beside its tokens
                the_study.enqueue_trial(start | {ENCODER_KEY: encoders[0]},
                                        user_attrs={"origin": f"the recipe with {ENCODER_KEY} = {encoders[0]}"})
    log.info(f"tune: {name} ({'new' if is_new else 'resumed, ' + str(len(the_study.trials)) + ' trials so far'}), "
             f"{direction} {key} over {len(space)} keys ({'from the recipe' if declared else 'default space'}), "
             f"budget {budget:g} s; storage {masked(url)}")
    search = Search(base, space, key, out, budget, started, refit, final_bags(user, refit))
    callbacks = [_keep_top(out, ensemble.POOL if may_ensemble(user, space, refit) else 1), _stop_at(search)]
    if trials:
        callbacks.append(optuna.study.MaxTrialsCallback(trials, states=None))
    try:
        remaining = search.deadline - time.perf_counter()
        if remaining <= 0:
            raise BudgetTooSmall(f"--budget {budget:g}: too small; it ran out before the first trial began "
                                 f"(reading the data took {time.perf_counter() - started:.1f} s)")
        the_study.optimize(search, timeout=remaining, catch=(TrialFailed,), callbacks=callbacks)
    except BudgetTooSmall as e:
        _discard_if_empty(optuna, store, name, the_study, is_new, out if created_out and not storage else None)
        raise UserError(str(e)) from None
    return conclude(the_study, user, space, key, out, url, budget, started, refit, search.val_outputs, search.bags)


def final_bags(user: Recipe, refit: bool) -> int:
    """How many models the final one bags: FINAL_BAGS when the recipe leaves model.bags to honed on feature rows
    (a table) and nothing forbids bagging; else 0 (the chosen trial's own model)."""
    from honed.data import build_data

    if user.model.bags != "auto" or refit or user.train.privacy is not None:
        return 0
    return FINAL_BAGS if build_data(user.data).input_kind == "features" else 0


def _stop_at(search: Search):
    """No new trial once the search's deadline (which moves earlier as the refit's cost becomes known) passed."""
    def stop(study, trial) -> None:
        if time.perf_counter() >= search.deadline:
            study.stop()
    return stop


def conclude(study, user: Recipe, space: Space, key: str, out: Path, url: str, budget: float, started: float,
             refit: bool = False, val_outputs: dict[int, tuple] | None = None, bags: int = 0) -> TuneResult:
    """The search policy, once the trials are done: choose the simplest trial within noise of the top score,
    refit it on every row when the recipe holds out none, score the test split once (for the chosen run only),
    then hand everything to report.py to write."""
    from honed.tuning import report

    maximize = study.direction.name == "MAXIMIZE"
    rows = report.leaderboard(study, space, maximize)
    done = [r for r in rows if r["state"] == "COMPLETE"]
    counts = {state: sum(r["state"] == state for r in rows) for state in ("COMPLETE", "PRUNED", "FAIL")}
    chosen, verdicts = within_noise(study, rows, val_outputs or {}) if done else (None, {})
    for r in rows:
        if r["trial"] in verdicts:
            r["vs best"] = verdicts[r["trial"]]["text"]
    top = {r["trial"] for r in done[:report.TOP]}
    curves = {t.number: t.user_attrs.get("curve", []) for t in study.get_trials(deepcopy=False) if t.number in top}
    report.write_trials(rows, curves, report.importances(study) if len(done) > 1 else {}, space, key, maximize, out,
                        f"{study.study_name}: {len(rows)} trials")
    if not done:
        first = next((r["note"] for r in rows if r["state"] == "FAIL"), "")
        raise UserError(f"no trial finished within the budget of {budget:g} s ({counts['PRUNED']} pruned or cut, "
                        f"{counts['FAIL']} failed{': ' + first if first else ''}); give a larger --budget, "
                        f"fewer train.epochs or a smaller space. Trials so far: {out / 'leaderboard.csv'}")
    blended = ensemble_of(study, user, space, out, val_outputs or {}, bags)
    choice = (assembled(study, space, user, out, *blended) if blended else
              choose(study, chosen, verdicts, user, space, out, refit, bags, started + budget))
    _keep_trials(out, {choice.trial.number, choice.top.number} | set(blended[0] if blended else ()))
    choice.summary["tune"] = {
        "study": study.study_name, "storage": masked(url), "metric": key, "direction": study.direction.name.lower(),
        "best_trial": choice.trial.number, "best_value": choice.trial.value, "params": choice.params,
        "best_run": str(choice.run_dir), "top_trial": choice.top.number, "top_value": choice.top.value,
        "vs_top": {str(n): v["text"] for n, v in verdicts.items()}, "refit_on_all_rows": refit,
        "final_bags": len(choice.summary.get("bags") or []) if bags else 0,
        "ensemble": {str(t): w for t, w in blended[0].items()} if blended else {},
        "trials": counts | {"total": len(rows)}, "budget_seconds": budget,
        "seconds": round(time.perf_counter() - started, 2),
    }
    report.write_choice(study, choice, rows, space, key, out)
    return TuneResult(out, study.study_name, masked(url), {"trial": choice.trial.number, "value": choice.trial.value,
                                                   "params": choice.params, "run_dir": str(choice.run_dir)},
                      rows, choice.summary)


@dataclass
class Choice:
    """The trial a search keeps, its recipe, and the run that was scored on the test split."""

    trial: Any  # optuna FrozenTrial
    top: Any  # the top-scoring trial (the chosen one, or a more complex one it ties with)
    params: dict
    recipe: Recipe
    run_dir: Path
    summary: dict


def bag_fits(trial, bags: int, ends: float) -> bool:
    """Whether `bags` runs of the chosen trial's length end before the budget does (else its own model is kept)."""
    cost = bags * float(trial.user_attrs.get("seconds") or 0.0)
    if time.perf_counter() + cost <= ends:
        return True
    log.info(f"tune: no time left to bag the chosen settings {bags} times (about {cost:.0f} s): the chosen trial's "
             "own model is the final one")
    return False


def choose(study, chosen: int, verdicts: dict, user: Recipe, space: Space, out: Path, refit: bool,
           bags: int = 0, ends: float = float("inf")) -> Choice:
    """The chosen trial's recipe, and its test metrics scored once: on a refit over every training row, on its
    settings bagged over `bags` validation folds, on a rerun when its folder went (the search keeps only the top
    trial's), or on the trial's own run."""
    from honed import api
    from honed.run import read_summary, write_summary

    top = best = study.best_trial
    if chosen != best.number:  # as good within noise, and simpler: the one to keep
        best = next(t for t in study.get_trials(deepcopy=False) if t.number == chosen)
        log.info(f"tune: trial {best.number} is within noise of the top score (trial {top.number}: "
                 f"{verdicts[chosen]['text']}) and simpler ({best.user_attrs.get('params_count'):,} parameters, "
                 f"{best.user_attrs.get('epochs')} epochs): it is the one chosen")
    params = {k: decode(space[k], v) if k in space else v for k, v in best.params.items()}
    best_recipe = apply(variant(user, {"search": {}}), params)
    if refit:
        best_recipe = variant(best_recipe, {"data.val_fraction": 0})
    run_dir = Path(best.user_attrs.get("run_dir", ""))
    summary: dict = {}
    bags = bags if bags and bag_fits(best, bags, ends) else 0  # 0 whenever refit (final_bags)
    if refit:  # the chosen settings on every training row; its test split is scored once, by the run itself
        refitted = api.train(best_recipe, out=out / "best-refit")
        run_dir, summary = refitted.path, dict(refitted.summary)
        log.info(f"tune: the best settings refit on every training row: {run_dir}")
    elif bags:  # the chosen settings, K models each stopped on its own fold; its test split scored by the run
        best_recipe = variant(best_recipe, {"model.bags": bags, "train.checkpoint": None})  # a bag keeps none
        bagged = api.train(best_recipe, out=out / "best-bagged")
        run_dir, summary = bagged.path, dict(bagged.summary)
        log.info(f"tune: the best settings bagged over {bags} validation folds (every row trains): {run_dir}")
    elif best is not top and not (run_dir / runfiles.SUMMARY).is_file():
        # the simpler trial's folder went as the search kept only the top one's: the same settings and seed again
        rerun = api.train(best_recipe, out=out / "chosen")
        run_dir, summary = rerun.path, dict(rerun.summary)
    # only a run folder of this process's own --out: another process may be deleting folders in its own
    elif run_dir.is_relative_to(out.resolve()) and (run_dir / runfiles.SUMMARY).is_file():
        summary = read_summary(run_dir)
        summary["test"] = api.evaluate(run_dir)  # the test split, once, for the chosen trial only
        write_summary(run_dir, summary)
    else:
        log.warning(f"the best trial ran in another process ({best.user_attrs.get('worker', '?')}): its run "
                    f"directory {run_dir} belongs to that process's report, which has its test metrics")
    return Choice(best, top, params, best_recipe, run_dir, summary)


def assembled(study, space: Space, user: Recipe, out: Path, weights: dict[int, float], outputs: torch.Tensor,
              targets: torch.Tensor) -> Choice:
    """The chosen trials' models as one run (model.members), scored on the test split once; best.yaml stays the
    top trial's recipe (an ensemble is not trained again)."""
    from honed import api

    top = study.best_trial
    params = {k: decode(space[k], v) if k in space else v for k, v in top.params.items()}
    run = api.assemble([(out / "trials" / f"trial-{t:04d}", w) for t, w in weights.items()], out / "best-ensemble",
                       outputs, targets)
    log.info(f"tune: the ensemble of {len(weights)} trials: {run.path}")
    return Choice(top, top, params, apply(variant(user, {"search": {}}), params), run.path, dict(run.summary))


def within_noise(study, rows: list[dict], val_outputs: dict[int, tuple]) -> tuple[int, dict]:
    """(the trial to choose, {trial: verdict}). Every finished trial with validation outputs is tested
    against the best on the same validation rows on what the search ranks by (a paired bootstrap of per-row log
    loss when that is the loss, McNemar's exact test for accuracy, a paired bootstrap for mse:
    evaluation/significance.py). Among the trials whose difference from the best is noise at 95%,
    the simplest is chosen: fewest parameters, then fewest epochs, then the better score."""
    import torch

    from honed.evaluation.significance import described, versus

    best = study.best_trial.number
    if best not in val_outputs:
        return best, {}
    finished = {t.number: t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"}
    verdicts, tied = {best: {"text": "best", "p": 1.0}}, [best]
    reference = val_outputs[best]
    by = "loss" if study.user_attrs.get("metric") == "val_loss" else "accuracy"  # what the search ranks by
    for number, outputs in val_outputs.items():
        if number == best or number not in finished or not (
                len(outputs[1]) == len(reference[1]) and torch.equal(outputs[1], reference[1])):
            continue
        result = versus(reference[:2], outputs[:2], outputs[2], by=by)
        verdicts[number] = {"text": described(result), "p": result["p"]}
        if not result["significant"]:
            tied.append(number)
    order = {r["trial"]: i for i, r in enumerate(rows)}
    chosen = min(tied, key=lambda n: (finished[n].user_attrs.get("params_count") or 0,
                                      finished[n].user_attrs.get("epochs") or 0, order.get(n, 0)))
    return chosen, verdicts




def _task_of(recipe: Recipe) -> str:
    """Build the data once before the search: its task picks the default metric, and a bad path fails here."""
    from honed.data import build_data

    return build_data(recipe.data).task  # kept for the first trial by reuse_built_data


def _keep_top(out: Path, keep: int):
    """After each trial, delete the run folders of finished trials outside the best `keep` (disk stays small;
    the best few are what an ensemble is drawn from)."""

    def callback(study, trial) -> None:
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state.name == "COMPLETE"]
        done.sort(key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
        kept = {t.number for t in done[:keep]}
        states = {t.number: t.state.name for t in trials}
        for folder in (out / "trials").glob("trial-*"):
            number = int(folder.name.split("-")[1])
            if number not in kept and states.get(number, "RUNNING") != "RUNNING":
                shutil.rmtree(folder, ignore_errors=True)

    return callback


def _keep_trials(out: Path, numbers: set[int]) -> None:
    """Once the search decided: only the folders of the trials it kept (chosen, top, the ensemble's) stay."""
    for folder in (out / "trials").glob("trial-*"):
        if int(folder.name.split("-")[1]) not in numbers:
            shutil.rmtree(folder, ignore_errors=True)


def may_ensemble(user: Recipe, space: Space, refit: bool) -> bool:
    """Whether the search may end on an ensemble of its trials: trials that share their preprocessing (no data
    key searched), validated on rows that are kept, and a recipe that is not private (an ensemble's selection
    reads the validation rows once more) nor an ensemble already; trials that may be bags (model.bags not 1)."""
    return not (refit or user.model.members or user.train.privacy is not None or user.model.bags == 1
                or any(k.startswith("data.") for k in space))


def ensemble_of(study, user: Recipe, space: Space, out: Path, val_outputs: dict[int, tuple], bags: int
                ) -> tuple[dict[int, float], torch.Tensor, torch.Tensor] | None:
    """({trial: weight}, the blend's outputs, the rows' targets) when greedy selection over the best finished
    trials (each a bag, its outputs out of fold on every training row) keeps more than one; else None."""
    if bags or not may_ensemble(user, space, refit=False):  # trials of one model each get a final bag instead
        return None
    maximize = study.direction.name == "MAXIMIZE"
    done = sorted((t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"),
                  key=lambda t: t.value, reverse=maximize)
    best = val_outputs.get(done[0].number) if done else None
    pool = {}
    for t in done[:ensemble.POOL]:
        kept = val_outputs.get(t.number)
        folder = out / "trials" / f"trial-{t.number:04d}"
        if (kept and best and kept[3] == "out of fold" and torch.equal(kept[1], best[1])
                and (folder / runfiles.SUMMARY).is_file()):
            pool[t.number] = kept[0]
    if len(pool) < 2:
        return None
    weights, loss = ensemble.select(pool, best[1], best[2])
    if len(weights) < 2:
        return None
    log.info(f"tune: an ensemble of {len(weights)} trials ({', '.join(f'{t}: {w:.2f}' for t, w in weights.items())}"
             f"), out-of-fold loss {loss:.4f} against the best trial's "
             f"{ensemble.row_losses(pool[done[0].number], best[1], best[2]).mean():.4f}")
    return weights, ensemble.blend(pool, weights), best[1]


def _discard_if_empty(optuna, store, name: str, study, is_new: bool, folder: Path | None) -> None:
    """A search that finished nothing leaves nothing behind (no half-made study)."""
    if not is_new or any(t.state.name == "COMPLETE" for t in study.trials):
        return
    optuna.delete_study(study_name=name, storage=store)
    if folder is not None:  # the folder (and its study.db) was made by this command
        shutil.rmtree(folder, ignore_errors=True)
