"""The Python API; the command line calls exactly these functions.

    honed.train(recipe, overrides=[...], out=None)  -> Run
    honed.resume(run_dir)                           -> Run (continues from the newest checkpoint)
    honed.evaluate(run_dir, overrides=[...])        -> metrics dict
    honed.predict(run_dir, inputs, output=None)     -> DataFrame
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, NamedTuple

import torch

from honed import data as data_stage
from honed import run as run_stage
from honed import files, runfiles
from honed.files import hold
from honed import warmup
from honed.errors import UserError
from honed.data.profile import split_profile
from honed.evaluation import class_probabilities, metric_names, outputs_of, score_outputs
from honed.models import PRETRAINED, Shape, build_model, count_params
from honed.models.layers import set_document_frequency
from honed.recipe import Recipe, dump_recipe, load_recipe, variant
from honed.report import save_test_evidence, write_report
from honed.run.card import write_model_card
from honed.run.tracking import run_written, trackers
from honed.training import Hook, NonFiniteLoss, Objective, Trainer, build_loss, distributed
from honed.training.loop import monitor_of, prepare as prepare_trainer, run as run_loop
from honed.training.accel import deterministic
from honed.training.bagging import train_bag
from honed.training.device import pick_device, seed_everything
from honed.training.state import load_trained_state

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("honed")


class LoadedRun(NamedTuple):
    """A run ready to predict: its recipe, its model with the trained weights (eval mode) and its preprocessor."""

    recipe: Recipe
    model: torch.nn.Module
    pre: object


@dataclass
class Run:
    """A run directory and everything read from it: the one owner of its files.

    `honed.train` returns one; every other command opens one with `Run.open(path)`. File names live in
    honed.runfiles; nothing else joins a run path with a literal name.
    """

    path: Path
    summary: dict = field(default_factory=dict)
    model: torch.nn.Module | None = None
    # a bag's validation evidence as just trained (not stored): (each row's output from the member that did not
    # train on it, the rows' labels); `honed tune` compares trials on it
    out_of_fold: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def open(cls, run_dir: str | Path) -> "Run":
        """A finished (or stopped) run: refused with one line when the folder is not a run."""
        path = run_stage.check_run_dir(run_dir)
        return cls(path, run_stage.read_summary(path))

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def recipe(self) -> Recipe:
        return load_recipe(self.file(run_stage.RECIPE))

    @property
    def history(self) -> list[dict]:
        return run_stage.read_metrics(self.path)

    @property
    def shape(self) -> Shape:
        """What rebuilds the module (model.json), as training wrote it."""
        path = self.file(run_stage.MODEL)
        try:
            return Shape.from_dict(run_stage.read_json(path)["shape"])
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{path}: damaged ({type(e).__name__}); train the run again") from None

    def build(self, recipe: Recipe | None = None) -> torch.nn.Module:
        """A fresh (untrained) module of this run's architecture."""
        return build_model((recipe or self.recipe).model, self.shape)

    def load(self) -> LoadedRun:
        """(recipe, model with its trained weights, fitted preprocessor)."""
        recipe = self.recipe
        pre = data_stage.load_preprocessor(self.path)
        weights = self.file(run_stage.WEIGHTS)
        fitted = Shape.of_preprocessor(pre)  # what the preprocessing files give the model: it must be model.json's
        if (fitted.input_dim, fitted.output_dim) != (self.shape.input_dim, self.shape.output_dim):
            raise UserError(f"{self.path}: the preprocessing files give {fitted.input_dim:,} inputs and "
                            f"{fitted.output_dim} outputs, model.json {self.shape.input_dim:,} and "
                            f"{self.shape.output_dim}; the run is damaged: train it again")
        self._check_weights_fit(recipe, weights)  # before the model is allocated: model.json may be damaged
        model = self.build(recipe)
        try:
            run_stage.load_weights(weights, model)
        except Exception as e:  # noqa: BLE001 - safetensors' own error type, or a state that does not fit the model
            first = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
            raise UserError(f"{weights}: damaged or not this run's weights ({first}); train the run again") from None
        if hasattr(model, "merge_adapter"):  # inference, export and serving run the merged weights: no adapter cost
            model.merge_adapter()
        model.eval()
        return LoadedRun(recipe, model, pre)

    def _check_weights_fit(self, recipe: Recipe, weights: Path) -> None:
        """model.json's shape and the recipe must give the very tensors model.safetensors holds: compared on
        the meta device (shapes, no memory) with the file's header, so a damaged model.json is one line, not a
        model of its size allocated (a pretrained encoder is checked by loading)."""
        from safetensors import safe_open

        from honed.models import meta_state_shapes

        if recipe.model.name in PRETRAINED:  # checked by loading
            return
        try:
            with safe_open(str(weights), "pt") as f:
                stored = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as e:  # noqa: BLE001 - safetensors' own error type for a damaged header
            first = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
            raise UserError(f"{weights}: damaged or not this run's weights ({first}); train the run again") from None
        expected = meta_state_shapes(recipe.model, self.shape)
        for name in sorted(set(stored) | set(expected)):
            if stored.get(name) != expected.get(name):
                raise UserError(f"{self.file(run_stage.MODEL)} does not fit {weights.name}: {name!r} is "
                                f"{stored.get(name, 'missing')} in the weights, {expected.get(name, 'missing')} from "
                                "model.json and the recipe; the run is damaged: train it again")

    def test_split(self, loaded: LoadedRun | None = None):
        """The run's test split, transformed by its fitted preprocessor (read from the raw files)."""
        recipe, _, pre = loaded or self.load()
        return data_stage.test_split(recipe.data, pre)

    def test_outputs(self) -> tuple[torch.Tensor, torch.Tensor, str]:
        """(raw outputs, targets, task) on the test split: test_outputs.npz when training kept it, else scored."""
        from honed.report.evidence import load_test_outputs

        kept = load_test_outputs(self.path)
        if kept is not None:
            return torch.from_numpy(kept[0]), torch.from_numpy(kept[1]), data_stage.load_preprocessor(self.path).task
        loaded = self.load()
        split = self.test_split(loaded)
        return outputs_of(loaded.model, split.x), split.y.cpu(), loaded.pre.task


def refuse_language_model(run_dir: str | Path, command: str) -> None:
    """One line, before any model loads, for the commands a causal language model's run does not take yet."""
    if Run.open(run_dir).recipe.model.name == "causal_lm":
        raise UserError(f"{command} does not take causal language model runs yet (model.name = causal_lm); "
                        "honed predict (completions) and honed evaluate (perplexity) do")


def prepare_model(recipe: Recipe, bundle, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The model a recipe trains on a bundle, as training starts it: built, initialized (seeded by the caller),
    with what is fitted outside the weights (the TF-IDF idf) set from the training rows, on `device`.
    Training, the range test, the doctor's probes and race all start from this one function."""
    refuse_training_an_ensemble(recipe)
    shape = Shape.of(bundle)
    model = build_model(recipe.model, shape)
    if recipe.model.pooling == "tfidf":  # the idf of every token, from the training texts only
        set_document_frequency(model, bundle.train.x.document_frequency(shape.input_dim), len(bundle.train))
    if hasattr(model, "fit_to_training_rows"):  # weights set from the data, not drawn (resnet's whitening stem)
        model.fit_to_training_rows(bundle.train.x)
    return model.to(device)


def prepare(recipe: Recipe, bundle, *, world: distributed.World = distributed.World(),
            device: torch.device | str | None = None, hooks: Iterable[Hook] = (), loss_fn=None,
            started: float | None = None) -> Trainer:
    """A Trainer ready to run (`honed.training.loop.run`): the recipe's model from `prepare_model` and everything
    around it (optimizer, schedule, batches, the recipe's hooks, then `hooks`). Training, the range test and the
    doctor's race all start here; distillation and search trials go through `train`. Seed first (the caller's
    `seed_everything(recipe.seed)`): the initial weights are drawn here."""
    device = pick_device(recipe.train.device) if device is None else device
    model = prepare_model(recipe, bundle, device)
    return prepare_trainer(model, bundle, recipe, list(hooks), seed=recipe.seed, started=started, world=world,
                           loss_fn=loss_fn)


def train(recipe: str | Path | dict | Recipe, overrides: Iterable[str] = (), *, out: str | Path | None = None,
          quiet: bool = True, started: float | None = None, hooks: Iterable[Hook] = (), score_test: bool = True,
          objective: Objective | None = None, overwrite: bool = False) -> Run:
    """Preprocess, build, train, evaluate on the test split, and write the run directory.

    An `out` holding an unfinished run is refused (resume it instead) unless `overwrite` starts it again.
    `hooks` join the training loop after honed's own (see honed.training.hooks.Hook).
    `score_test=False` leaves the test split untouched (searches choose on validation only).
    `objective` changes what the model learns: extra training targets beside the labels and the loss that
    reads them (honed.training.Objective; a distillation Teacher is one).
    Under torchrun every worker calls this; the main worker writes the run directory.
    """
    started = time.perf_counter() if started is None else started
    recipe = load_recipe(recipe, overrides)
    run_stage.check_out_free(out, overwrite)
    return _train(recipe, out, quiet, started, list(hooks), score_test=score_test, objective=objective)


def resume(run_dir: str | Path, *, quiet: bool = True, started: float | None = None, hooks: Iterable[Hook] = ()) -> Run:
    """Continue a stopped run from its newest intact checkpoint, in the same run directory."""
    started = time.perf_counter() if started is None else started
    path = Path(run_dir)
    if not (path / run_stage.RECIPE).is_file():
        raise UserError(f"--resume {path}: not a honed run directory ({run_stage.RECIPE} is missing)")
    if (path / run_stage.SUMMARY).is_file():
        raise UserError(f"--resume {path}: this run already finished (summary.json is there); nothing to resume")
    with files.releasing():
        if os.environ.get("RANK", "0") == "0":  # before anything is read: another process may be training this run
            hold(path, "--resume")
        state = run_stage.load_latest(path)
        return _train(load_recipe(path / run_stage.RECIPE), path, quiet, started, list(hooks), state)


def refuse_training_an_ensemble(recipe: Recipe) -> None:
    """model.members is an assembled ensemble (honed tune's): its members trained with settings of their own."""
    if recipe.model.members:
        raise UserError(f"model.members: this recipe is an ensemble of {len(recipe.model.members)} models that "
                        "`honed tune` assembled from its trials, each trained with its own settings; it is used "
                        "(predict, evaluate, export, serve), not trained again: train one trial's recipe "
                        "(TUNE_DIR/trials/*/recipe.yaml) or drop model.members")


def _train(recipe: Recipe, out, quiet: bool, started: float, hooks: list[Hook], state: dict | None = None,
           score_test: bool = True, objective: Objective | None = None) -> Run:
    refuse_training_an_ensemble(recipe)
    spec = recipe.train
    # torch._dynamo is imported by torch.compile and use_deterministic_algorithms: imported in the background
    # then; kept out of a run that needs neither (optimizers included: warmup.eager_optimizers)
    compiling = spec.compile or spec.deterministic
    warmup.start(compiling)
    if spec.threads:
        torch.set_num_threads(spec.threads)
    world, device = distributed.start(pick_device(spec.device), spec.strategy)
    try:  # the run folder this training takes is given up when it ends
        with files.releasing(), deterministic(spec.deterministic), \
                (contextlib.nullcontext() if compiling else warmup.eager_optimizers()):
            return _train_worker(recipe, out, quiet, started, hooks, state, world, device, score_test, objective)
    finally:
        distributed.stop()


def _train_worker(recipe: Recipe, out, quiet: bool, started: float, hooks: list[Hook], state: dict | None,
                  world: distributed.World, device: torch.device, score_test: bool = True,
                  objective: Objective | None = None) -> Run:
    seed_everything(recipe.seed)
    timing = {"data": -time.perf_counter()}  # where the run's time goes (summary.json, the report)
    bundle = _build_data(recipe, world)
    timing["data"] += time.perf_counter()
    recipe = for_task(recipe, bundle.task)
    # train.batch_size is global: the same on every worker
    recipe = sized_for_rows(recipe, len(bundle.train), bundle.input_dim, getattr(bundle.preprocessor, "numeric_dim", 0),
                            images=bundle.image_shape is not None)
    if recipe.model.bags > 1:
        refuse_bagging_with(recipe, bundle, world, objective, state)
    timing["setup"] = -time.perf_counter()
    # rows and classes per split, before an objective puts other targets beside the labels; a private run
    # publishes no count of its training rows by class
    profile = split_profile(bundle, with_train=recipe.train.privacy is None)
    loss_fn = None
    if objective is not None and recipe.train.privacy is not None:
        raise UserError("distillation under train.privacy: the teacher saw the training rows without privacy, which "
                        "voids the guarantee; train the student privately without a teacher")
    if objective is not None:  # e.g. a teacher's logits beside each label, and a loss that follows them
        bundle = bundle.with_train_targets(objective.targets(recipe.data, bundle))
        loss_fn = objective.loss(build_loss(recipe.loss, bundle.task), bundle.task)
    shape = Shape.of(bundle)
    run_dir = Path(distributed.broadcast_text(str(_start_run_dir(recipe, out, bundle, shape, state is not None))
                                              if world.main else "",
                                              world))
    if world.parallel:
        log.info(f"distributed: {world.size} workers ({torch.distributed.get_backend()}), global batch "
                 f"{recipe.train.batch_size} split across them ({recipe.train.batch_size // world.size} or so each)")
    ckpt = recipe.train.checkpoint
    if world.main:
        hooks = ([run_stage.Resume(state)] if state else []) + [run_stage.MetricsLog(run_dir)] + hooks
        hooks += [] if quiet else [run_stage.ProgressBar()]
        hooks += trackers(recipe.train.track, run_dir, recipe)  # the main worker's alone
    elif state:
        hooks = [run_stage.Resume(state)]
    if ckpt:
        hooks.append(run_stage.Checkpoints(run_dir, ckpt.every_epochs, ckpt.every_steps, ckpt.keep, write=world.main,
                                           every_minutes=ckpt.every_minutes))
    if bundle.task == "language_modeling" and world.main:  # the page shows what it wrote before and after
        from honed.data.chat import row_prompts
        from honed.training.generations import SAMPLES, SampleGenerations

        hooks.append(SampleGenerations(row_prompts(bundle.test.x, SAMPLES), bundle.preprocessor.tokenizer))
    bags = recipe.model.bags
    one = variant(recipe, {"model.bags": 1}) if bags > 1 else recipe
    # what every member but the last sees: the progress bar, and hooks that act on each member's fit
    others = [h for h in hooks if isinstance(h, run_stage.ProgressBar) or getattr(h, "every_member", False)]

    def start(member_bundle, member: int = 0) -> Trainer:  # the last member's history is the run's
        try:
            trainer = prepare(one, member_bundle, world=world, device=device, loss_fn=loss_fn, started=started,
                              hooks=hooks if member == bags - 1 else others)
            trainer.member = member
        except BaseException:  # a setup error (a loss that does not fit the task, a model too large): no run
            if world.main and state is None:  # was made, so no folder is left to block --out or advise a --resume
                run_stage.remove_run_dir(run_dir)
            raise
        if member < bags - 1:  # a history nobody reads: validate what stops it only (the loss, or the monitored
            monitored = monitor_of(one)  # metric), not every metric after every epoch (a tenth of a bag's time)
            trainer.metrics = [m for m in trainer.metrics if f"val_{m}" == monitored]
        return trainer

    def fit(trainer: Trainer) -> None:
        try:
            run_loop(trainer)
        except NonFiniteLoss as e:
            raise UserError(stopped_message(e, trainer.model, run_dir, world.main)) from None

    bag = None
    if bags > 1:  # K members through the same prepare and loop; their setup counts as training time
        timing["setup"] += time.perf_counter()
        fitting = time.perf_counter()
        bag = train_bag(bundle, bags, recipe.seed, recipe.data.fold is None, start, fit)
        trainer, model = bag.last, bag.model
    else:
        trainer = start(bundle)
        model = trainer.model
        timing["setup"] += time.perf_counter()
        fitting = time.perf_counter()
        fit(trainer)
    fitting = time.perf_counter() - fitting
    timing["training"] = trainer.train_seconds
    timing["validation and hooks"] = max(0.0, fitting - trainer.train_seconds)  # per-epoch scoring, checkpoints
    model = distributed.gathered_model(model, trainer.strategy, lambda: build_model(recipe.model, shape))
    if not world.main:
        distributed.barrier(world)
        return Run(run_dir, {}, model)
    timing["evaluation"] = -time.perf_counter()
    # a bag that took in the validation rows is scored out of fold; under honed cv its fold still validates
    summary, test_scores = _summarize(recipe, bundle, model, trainer, started, device, score_test,
                                      (bag.rows, bag.out_of_fold) if bag and recipe.data.fold is None else None)
    if bag:
        summary["bags"] = bag.members
    summary["data"] = profile
    timing["evaluation"] += time.perf_counter()
    timing["writing"] = -time.perf_counter()
    run_stage.save_weights(run_dir / run_stage.WEIGHTS, model.state_dict())
    if test_scores is not None:
        save_test_evidence(run_dir, test_scores, bundle.test.y, bundle.task, bundle.test_texts,
                           pictures_of(bundle.preprocessor, bundle.test.x))
    run_stage.plot_curves(trainer.history, run_dir / run_stage.CURVES, title=recipe.name, best_epoch=trainer.best_epoch)
    if ckpt and not ckpt.keep_final:
        run_stage.remove_checkpoints(run_dir)
    timing["writing"] += time.perf_counter()
    summary["timing"] = timing
    summary["total_seconds"] = time.perf_counter() - started
    run_stage.write_summary(run_dir, summary)
    write_model_card(run_dir, recipe.model_dump(mode="json"), summary)  # RUN_DIR/README.md
    if recipe.train.report and score_test:  # search trials and cv folds: their command's page sums them up
        write_report(run_dir)
    run_written(trainer.hooks, run_dir, summary)  # trackers keep the finished run's files
    distributed.barrier(world)
    scored_out_of_fold = bag is not None and recipe.data.fold is None
    return Run(run_dir, summary, model, (bag.out_of_fold, bag.rows.y) if scored_out_of_fold else None)


def refuse_bagging_with(recipe: Recipe, bundle, world: distributed.World, objective: Objective | None,
                        state: dict | None) -> None:
    """model.bags > 1 trains members one after another in one process; what does not fit that, in one line,
    before a run folder is made."""
    clashes = [(bundle.input_kind != "features", "text (feature rows only: tables, images)"),
               (recipe.train.checkpoint is not None, "train.checkpoint (set it to null)"),
               (recipe.train.privacy is not None, "train.privacy (each member would spend the privacy budget again)"),
               (world.parallel, "--nproc (train the bag in one process)"),
               (objective is not None, "distillation (distill into one model: model.bags=1)"),
               (state is not None, "--resume")]
    for clash, what in clashes:
        if clash:
            raise UserError(f"model.bags = {recipe.model.bags} does not work with {what}; or set model.bags=1")


# model.bags = auto: 5 members below BAG_ROWS training rows while rows x model inputs (numbers embedded) stays
# under BAG_CELLS (10,000 rows of 300 inputs): where bagging pays most (+0.5-1.5 points on five public tables'
# dev holdouts) and its 5x training time stays within seconds
BAG_ROWS, BAG_CELLS = 10_000, 3_000_000


AUTO_BATCH = (32, 512, 16)  # train.batch_size = auto: a power of two near rows / 16, within [32, 512]
# ... and within [32, 128] for images: CIFAR-10's validation images 83.4% -> 84.3% from 512 to 256 at the same 5
# epochs, in 8% less training time, and 82.9% -> 83.7% from 256 to 128 at the same 3 epochs, in the same time
# (the image_classification recipe's ResNet on 2 cores)
AUTO_BATCH_IMAGES = 128
# model.numeric_embedding = auto: an embedding from this many training rows. 5-fold CV on training rows only: below,
# none won on all four small tables (digits, diabetes, breast cancer, wine: 133-1,150 rows); from 2,400 rows
# periodic won on all four samples of census income and housing (2,400 and 6,400 rows), by 1-1.5 points or 0.04 RMSE
EMBED_FROM_ROWS = 2_000
# ... piecewise (quantile bins) below this many, periodic from it. Validation loss, piecewise against periodic: lower
# on 7 of 9 tables of 2,000-10,000 training rows (telecom churn 0.248 -> 0.174, hpc 0.505 -> 0.478, credit 0.447 ->
# 0.425, house prices 0.100 -> 0.097; equal on wages, higher on a 6,000-row sample of census income), higher on both
# larger tables (census income 0.296 -> 0.312, housing 0.155 -> 0.165)
PIECEWISE_BELOW_ROWS = 10_000


def auto_embedding(rows: int, scaling: str | None) -> str:
    """model.numeric_embedding = auto for `rows` training rows whose numbers are scaled by `scaling`."""
    if rows < EMBED_FROM_ROWS:
        return "none"
    return "piecewise" if rows < PIECEWISE_BELOW_ROWS and scaling == "quantile" else "periodic"


def auto_batch_size(rows: int, images: bool = False) -> int:
    """train.batch_size = auto for `rows` training rows: about 16 steps per epoch on small tables, where a few
    large batches per epoch would leave too few steps to learn from, and 512 on large ones (256 of images)."""
    low, high, steps = AUTO_BATCH
    high = AUTO_BATCH_IMAGES if images else high
    return int(min(high, max(low, 2 ** math.floor(math.log2(max(1, rows / steps))))))


def for_task(recipe: Recipe, task: str) -> Recipe:
    """The recipe with its `regression:` settings applied where the target is a number (logged), the section then
    emptied: the recipe written to the run holds what ran, so rerunning it repeats the run."""
    if not recipe.regression:
        return recipe
    section = dict(recipe.regression) if task == "regression" else {}
    if section:
        log.info(f"{task}: {', '.join(f'{k} = {v}' for k, v in section.items())} (the recipe's regression: section)")
    return variant(recipe, {**section, "regression": {}})


def sized_for_rows(recipe: Recipe, rows: int, inputs: int = 0, numbers: int = 0, images: bool = False) -> Recipe:
    """The recipe with what depends on the training rows (and the `inputs` columns, of which the first `numbers`
    are numbers; or `images`) resolved: model.numeric_embedding = auto, model.bags = auto, train.batch_size = auto, and with
    train.steps the epochs that make about that many optimizer steps (at most train.epochs). The recipe written
    to the run holds the result, so rerunning it repeats the run."""
    spec = recipe.train
    changes: dict[str, object] = {}
    embedding = recipe.model.numeric_embedding
    if embedding == "auto":
        embedding = changes["model.numeric_embedding"] = auto_embedding(rows, getattr(recipe.data, "scaling", None))
        log.info(f"model: numeric embedding {embedding} for {rows:,} training rows (model.numeric_embedding = auto: "
                 f"none below {EMBED_FROM_ROWS:,}, piecewise below {PIECEWISE_BELOW_ROWS:,}, periodic from it)")
    if recipe.model.bags == "auto":
        width = inputs + (numbers * recipe.model.numeric_dim if embedding in ("periodic", "piecewise") else 0)
        bags = changes["model.bags"] = 5 if rows < BAG_ROWS and rows * width < BAG_CELLS else 1
        log.info(f"model: {bags} bag(s) for {rows:,} training rows of {width:,} model inputs (model.bags = auto: 5 "
                 f"below {BAG_ROWS:,} rows while rows x inputs < {BAG_CELLS:,})")
    batch = spec.batch_size
    if batch == "auto":
        batch = changes["train.batch_size"] = auto_batch_size(rows, images)
        log.info(f"train: batch size {batch} for {rows:,} training rows (train.batch_size = auto)")
    if spec.steps is not None and recipe.optimizer.name not in ("gd", "lbfgs"):
        per_epoch = max(1, math.ceil(rows / (batch * spec.accumulate)))
        epochs = max(1, min(spec.epochs, math.ceil(spec.steps / per_epoch)))
        cut = f", the last cut at step {spec.steps}" if spec.exact_steps and spec.steps < epochs * per_epoch else ""
        log.info(f"train: {epochs} epochs of {per_epoch} steps{cut} (train.steps = {spec.steps}, at most "
                 f"{spec.epochs} epochs)")
        # exact: the loop stops at train.steps itself, so it stays; else whole epochs replace it
        changes |= {"train.epochs": epochs} | ({} if spec.exact_steps else {"train.steps": None})
    return variant(recipe, changes) if changes else recipe


def _build_data(recipe: Recipe, world: distributed.World):
    """The main worker builds (and caches) the data first; the others then read the cache."""
    if world.main:
        bundle = data_stage.build_data(recipe.data)
    distributed.barrier(world)
    if not world.main:
        bundle = data_stage.build_data(recipe.data)
    return bundle


def _start_run_dir(recipe: Recipe, out, bundle, shape: Shape, resuming: bool = False) -> Path:
    run_dir = Path(out) if resuming else run_stage.new_run_dir(recipe.name, out)
    hold(run_dir, "--resume" if resuming else "--out")  # released when training ends: one writer per run
    run_stage.write_recipe(run_dir, dump_recipe(recipe))
    bundle.preprocessor.save(run_dir, profile=recipe.train.privacy is None)
    run_stage.write_json(run_dir / run_stage.MODEL, {"spec": recipe.model.model_dump(mode="json"),
                                                     "shape": shape.to_dict()})
    return run_dir


def _summarize(recipe: Recipe, bundle, model: torch.nn.Module, trainer, started: float, device,
               score_test: bool = True, out_of_fold: tuple | None = None) -> tuple[dict, torch.Tensor | None]:
    """(summary.json's content, the raw test outputs it was scored from, or None without a test score).
    `out_of_fold`: (rows, outputs) of a bag, each row scored by the member that did not train on it: the
    validation score, on every row the bag trained on."""
    scored = split_scorer(recipe, bundle.preprocessor)
    score = lambda scores, split: scored(scores, split.y)  # noqa: E731
    test_scores = outputs_of(model, bundle.test.x) if score_test else None
    spec = recipe.train
    if out_of_fold is not None:
        rows, outputs = out_of_fold
        val, sizes = score(outputs, rows), {"train": len(rows), "val": len(rows), "test": len(bundle.test)}
    else:
        outputs = trainer.validated_outputs(bundle.val)  # scored in the loop already (a bag's member: another split)
        outputs = outputs_of(model, bundle.val.x) if outputs is None and bundle.val is not None else outputs
        val = score(outputs, bundle.val) if bundle.val is not None else {}
        sizes = {"train": len(bundle.train), "val": len(bundle.val) if bundle.val else 0, "test": len(bundle.test)}
    summary = {
        "name": recipe.name,
        "task": bundle.task,
        "labels": bundle.labels,
        "test": score(test_scores, bundle.test) if score_test else {},
        "val": val,
        "train_seconds": trainer.train_seconds,
        "total_seconds": time.perf_counter() - started,
        "epochs_run": trainer.epoch,
        "best_epoch": trainer.best_epoch,
        "stop_reason": trainer.stop_reason or "finished all epochs",
        "params": count_params(model),
        "trainable_params": count_params(model, trainable=True),
        "samples_per_second": trainer.samples_seen / max(trainer.train_seconds, 1e-9),
        "sizes": sizes,
        "device": str(device),
        "workers": trainer.world.size,
        "strategy": trainer.strategy,
        "precision": spec.precision,
        "compile": spec.compile,
        "seed": recipe.seed,
    }
    if "time_to_target" in trainer.results:
        summary["time_to_target"] = trainer.results["time_to_target"]
    if "privacy" in trainer.results:
        summary["privacy"] = trainer.results["privacy"]
    if "loss_spikes" in trainer.results:
        summary["loss_spikes"] = trainer.results["loss_spikes"]
    if "generations" in trainer.results:
        summary["generations"] = trainer.results["generations"]
    return summary, test_scores


def stopped_message(e: NonFiniteLoss, model: torch.nn.Module, run_dir: Path, write: bool = True) -> str:
    """Save the last good weights (those of the last epoch that ended with finite losses) and say what happened."""
    good = e.last_good if e.last_good is not None and e.last_good.weights is not None else None
    if good is not None:
        load_trained_state(model, good.weights)
    if write:
        if good is not None:
            run_stage.save_weights(run_dir / run_stage.WEIGHTS, model.state_dict())
        # where it broke, for honed doctor (the history in metrics.jsonl ends at the epoch before)
        run_stage.write_json(run_dir / runfiles.FAILURE, {"reason": str(e), "epoch": e.epoch, "step": e.step,
                                                       "value": str(e.value)})
    kept = (f"the last good weights (epoch {good.epoch}) are in {run_dir / run_stage.WEIGHTS}" if good is not None
            else "no epoch ended with finite losses, so no weights were kept")
    return f"training stopped: {e}; {kept}; try a smaller optimizer.lr or gradient-friendly settings"


def load_run(run_dir: str | Path) -> LoadedRun:
    """(recipe, model with its trained weights, fitted preprocessor) from a run directory."""
    return Run.open(run_dir).load()


def build_report(run_dir: str | Path) -> Path:
    """`honed report RUN_DIR`: the run's page rebuilt from its files; a finished run that predates
    test_outputs.npz has its test split scored once more and the evidence kept, so the page shows its errors."""
    from honed.data.build import load_raw, split_raw
    from honed.report import check_report_folder, report as write_page
    from honed.report.evidence import OUTPUTS

    path, summary = check_report_folder(run_dir)
    if summary.get("test") and not (path / OUTPUTS).is_file():
        recipe, model, pre = Run.open(path).load()
        raw = load_raw(recipe.data)  # the raw test texts too: the page shows the mistakes' own words
        _, _, test = split_raw(raw, recipe.data)
        inputs = pre.inputs(test.x)
        save_test_evidence(path, outputs_of(model, inputs), pre.targets(test.y), pre.task,
                           test.x if raw.kind == "text" else None, pictures_of(pre, inputs))
    return write_page(path)


def pictures_of(pre, inputs) -> Callable[[int], np.ndarray | None] | None:
    """Row -> that input's image as 8-bit pixels (the report shows the mistakes); None unless images."""
    if getattr(pre, "image_shape", None) is None or not hasattr(pre, "picture"):
        return None
    return lambda row: pre.picture(inputs[row])


def test_outputs(run_dir: str | Path) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(raw outputs, targets, task) of a saved run on its test split: what paired comparisons of runs need."""
    return Run.open(run_dir).test_outputs()


def assemble(members: list[tuple[str | Path, float]], out: str | Path, val_outputs: torch.Tensor | None = None,
             val_targets: torch.Tensor | None = None) -> Run:
    """A run answering the weighted mean of finished runs' outputs (model.members), written to `out` and scored
    once on the test split. The runs must share their data settings (so their preprocessing is the same); the
    first one's recipe, less its model's differences, is the ensemble's. `val_outputs`: the ensemble's outputs on
    the rows its members were chosen on (with `val_targets`), scored as its validation metrics."""
    run_stage.check_out_free(out)
    runs = [(Run.open(path), float(weight)) for path, weight in members]
    first = runs[0][0]
    recipe = first.recipe
    base = recipe.model.model_dump(mode="json", exclude={"members"})
    sets = []
    for run, weight in runs:
        other = run.recipe
        if other.data != recipe.data or other.model.members:
            raise UserError(f"{run.path}: its data settings differ from {first.path}'s (or it is an ensemble "
                            "already): an ensemble's members share their preprocessing")
        dumped = other.model.model_dump(mode="json", exclude={"members"})
        sets.append({"weight": weight, "set": {k: v for k, v in dumped.items() if v != base[k]}})
    total = sum(m["weight"] for m in sets)
    recipe = variant(recipe, {"model.members": [m | {"weight": m["weight"] / total} for m in sets]})
    run_dir = run_stage.new_run_dir(recipe.name, out)
    hold(run_dir, "--out")
    pre = data_stage.load_preprocessor(first.path)
    run_stage.write_recipe(run_dir, dump_recipe(recipe))
    pre.save(run_dir, profile=recipe.train.privacy is None)
    shape = first.shape
    run_stage.write_json(run_dir / run_stage.MODEL, {"spec": recipe.model.model_dump(mode="json"),
                                                     "shape": shape.to_dict()})
    from safetensors.torch import load_file

    state = {f"members.{i}.{k}": v for i, (run, _) in enumerate(runs)
             for k, v in load_file(str(run.file(run_stage.WEIGHTS))).items()}
    run_stage.save_weights(run_dir / run_stage.WEIGHTS, state)
    recipe, model, pre = Run(run_dir).load()  # every member's tensors checked against its own section here
    score = split_scorer(recipe, pre)
    test = data_stage.test_split(recipe.data, pre)
    test_scores = outputs_of(model, test.x)
    summary = first.summary | {
        "name": recipe.name,
        "test": score(test_scores, test.y),
        "val": score(val_outputs, val_targets) if val_outputs is not None else {},
        "params": count_params(model), "trainable_params": count_params(model, trainable=True),
        "train_seconds": sum(run.summary.get("train_seconds", 0.0) for run, _ in runs),
        "stop_reason": f"an ensemble of {len(runs)} trained runs",
        "ensemble": [{"run": str(run.path), "weight": m["weight"] / total} for (run, _), m in zip(runs, sets)],
    }
    save_test_evidence(run_dir, test_scores, test.y, pre.task, None, pictures_of(pre, test.x))
    run_stage.write_summary(run_dir, summary)
    write_model_card(run_dir, recipe.model_dump(mode="json"), summary)
    if recipe.train.report:
        write_report(run_dir)
    return Run(run_dir, summary, model)


def evaluate(run_dir: str | Path, overrides: Iterable[str] = ()) -> dict:
    """Metrics of a saved run on its test split, or on other data given by overrides (e.g. data.test=...)."""
    recipe, model, pre = load_run(run_dir)
    if overrides:
        recipe = load_recipe(recipe, overrides)
    split = data_stage.test_split(recipe.data, pre)
    return split_scorer(recipe, pre)(outputs_of(model, split.x), split.y)


def split_scorer(recipe: Recipe, pre) -> Callable[[torch.Tensor, torch.Tensor], dict]:
    """What scores a split's raw outputs against its targets, as every summary does: the recipe's loss and
    metrics (and a confusion matrix for classes), regression in the target's own units, 95% intervals."""
    loss_fn, names = build_loss(recipe.loss, pre.task), metric_names(recipe.metrics, pre.task)
    if pre.task in ("binary", "multiclass") and "confusion_matrix" not in names:
        names = names + ["confusion_matrix"]
    unscale = pre.unscale if pre.task == "regression" else None
    return lambda outputs, targets: score_outputs(outputs, targets, pre.task, loss_fn, names, pre.output_dim,
                                                  unscale, with_intervals=True)


def predict(run_dir: str | Path, inputs, *, output: str | Path | None = None, id_column: str | None = None,
            sampling=None):
    """Predictions for new inputs (a file, a list of texts, or a DataFrame of feature columns); a causal language
    model's run completes prompts (a JSONL file, or a list of strings or message lists) as `sampling` says
    (honed.evaluation.generation.Sampling: greedy, 128 new tokens at most, by default).

    Rows are joined back by `id_column` (a column of a table input, copied in front of the predictions); a table
    whose training dropped ID columns gets those copied too when the input has them."""
    from honed.data.predict_inputs import read_inputs, read_table_or_none

    if output is not None and isinstance(inputs, (str, Path)) and Path(output).resolve() == Path(inputs).resolve():
        raise UserError(f"--output {output}: that is the --input file; write the predictions elsewhere")
    recipe, model, pre = load_run(run_dir)
    if pre.kind == "chat":
        frame = completions_frame(model, pre, recipe, inputs, sampling)
        if output is not None:
            run_stage.write_text(Path(output), frame.to_csv(index=False))
        return frame
    if recipe.data.source == "images" and isinstance(inputs, (str, Path)):  # image files: decoded as in training
        from honed.data.sources.images import prediction_table

        table, id_column = prediction_table(Path(inputs), recipe.data, pre.image_shape[0]), id_column or "path"
    else:
        table = read_table_or_none(inputs, pre)  # read once: the features and the IDs come from the same rows
    raw = read_inputs(table if table is not None else inputs, pre, recipe.data)
    frame = predictions_frame(outputs_of(model, pre.inputs(raw)), pre)
    if pre.kind == "text":  # each prediction beside the text it answers, on one line as one line of input gave it
        frame.insert(0, "text" if "text" not in frame.columns else "text_input",
                     [" ".join(str(t).splitlines()) for t in raw])
    ids = passed_through(table, pre, id_column)
    if ids:
        passed = table[ids].reset_index(drop=True)  # a prediction column named like a passed one gets a suffix
        frame = passed.join(frame.rename(columns=lambda c: f"{c}_predicted" if c in passed else c))
    if output is not None:
        run_stage.write_text(Path(output), frame.to_csv(index=False))
    return frame


def completions_frame(model, pre, recipe: Recipe, inputs, sampling=None):
    """A causal LM's completions of the prompts in `inputs`, each on one line beside its prompt."""
    import pandas as pd

    from honed.evaluation.generation import Sampling, complete, read_prompts, shown_prompt

    prompts = read_prompts(inputs, recipe.data.max_chars)
    context = int(getattr(model.base.config, "max_position_embeddings", 0) or recipe.data.max_length)
    texts = complete(model, pre.tokenizer, prompts, sampling or Sampling(), context)
    one_line = lambda t: " ".join(t.splitlines())  # noqa: E731
    return pd.DataFrame({"prompt": [one_line(shown_prompt(p)) for p in prompts],
                         "completion": [one_line(t) for t in texts]})


def passed_through(table, pre, id_column: str | None) -> list[str]:
    """The input columns copied beside the predictions: --id-column, else the IDs training dropped."""
    if id_column is not None:
        if table is None or id_column not in table.columns:
            columns = ", ".join(map(str, table.columns))[:200] if table is not None else "none (texts)"
            raise UserError(f"--id-column {id_column!r} is not a column of the input; its columns: {columns}")
        return [id_column]
    encoder = getattr(pre, "column_encoder", None)
    return [c for c in encoder.ids if c in table.columns] if encoder is not None and table is not None else []


def predictions_frame(scores: torch.Tensor, pre):
    import pandas as pd

    if pre.task == "regression":
        return pd.DataFrame({"prediction": pre.unscale(scores).numpy()})
    names = pre.labels.names
    probs = class_probabilities(scores, pre.task)
    frame = pd.DataFrame({"prediction": [names[i] for i in probs.argmax(dim=1).tolist()]})
    for i, name in enumerate(names):
        frame[f"prob_{name}"] = probs[:, i].numpy()
    return frame


