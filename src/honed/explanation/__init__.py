"""`honed explain`: why a trained model said what it said, per input, checked before it is shown.

    honed explain RUN_DIR --text "a wonderful film" --text "dull and far too long"
    honed explain RUN_DIR --input rows.csv [--steps 50] [--sanity] [--out DIR]

Each input gets integrated-gradients attributions (attribute.py, on Captum): per word for text
(fold.py folds n-grams and sub-word pieces back onto words), per column for tables. Completeness is
checked for every input and the steps raised until it holds within 5%. With --sanity, the same
attributions from the same architecture with freshly initialized weights are computed too: if their
rank correlation with the trained model's is high, the explanation reflects the architecture more
than what was learned, and the output says so (Adebayo et al., 2018).
Output: explain.json, and explain.html (page.py), one self-contained page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from honed.errors import UserError
from honed import runfiles

MAX_INPUTS = 1000
MAX_STEPS = 10_000  # each step is a forward and backward pass over every input
BASELINES = ("auto", "mean", "zero")  # tables and images; text always starts from padding


@dataclass
class Explanation:
    run_dir: Path
    kind: str  # text | table
    items: list[dict]  # per input: words/columns, attributions, prediction, probability, gap, ...
    steps: int
    converged: bool
    sanity: dict | None = None
    overall: dict | None = None  # --global: per class, the words (or columns) that push toward it most
    method: str = "ig"
    baseline: str = "every token vector at zero (padding)"
    image_shape: list[int] | None = None

    def to_json(self) -> dict:
        return {"run": str(self.run_dir), "kind": self.kind, "method": self.method, "baseline": self.baseline,
                "steps": self.steps,
                "completeness_within_5%": self.converged, "sanity": self.sanity, "global": self.overall,
                "items": self.items}


def explain(run_dir, inputs, *, steps: int = 50, sanity: bool = False, method: str = "ig",
            baseline: str = "auto") -> Explanation:
    """Attributions for `inputs` (a list of texts, a file, or a DataFrame of feature rows) of a saved run;
    `method`: ig (integrated gradients, completeness enforced), gradient_shap or occlusion."""
    from honed.api import load_run, refuse_language_model

    check_steps(steps)  # before the run loads
    refuse_language_model(run_dir, "honed explain")
    return explain_loaded(load_run(run_dir), inputs, steps, sanity, Path(run_dir), method, baseline)


def check_steps(steps: int) -> None:
    if not 2 <= steps <= MAX_STEPS:
        raise UserError(f"--steps {steps}: integrated gradients takes 2 to {MAX_STEPS:,} steps (50 is usual)")


def explain_loaded(loaded: tuple, inputs, steps: int = 50, sanity: bool = False, run_dir: Path = Path("."),
                   method: str = "ig", baseline: str = "auto") -> Explanation:
    """explain() for a run already loaded as (recipe, model, preprocessor): what a server keeps."""
    from honed.data.predict_inputs import read_inputs
    from honed.explanation.attribute import integrated_gradients

    recipe, model, pre = loaded
    if getattr(getattr(pre, "settings", None), "encoder_features", None):
        raise UserError("honed explain: runs with data.encoder_features are not explained yet (the sentence "
                        "vector has no words to point at)")
    if pre.kind == "text" and getattr(pre, "features_dim", 0):
        raise UserError("honed explain: this run reads sentence vectors beside its tokens")
    raw = read_inputs(inputs, pre, recipe.data)
    if len(raw) == 0:
        raise UserError("honed explain: nothing to explain (no inputs)")
    if len(raw) > MAX_INPUTS:
        raise UserError(f"honed explain: {len(raw):,} inputs; explain at most {MAX_INPUTS:,} at once")
    check_steps(steps)
    tokens = pre.kind == "text"
    if tokens and any(not str(t).strip() for t in raw):
        raise UserError("honed explain: an input text is empty; there is nothing in it to attribute")
    x = pre.inputs(raw)
    x = x[:] if tokens else x
    with torch.no_grad():
        scores = model.eval()(x)
    target = None if scores.dim() == 1 else scores.argmax(dim=1)
    base, stated = table_baseline(pre, baseline) if not tokens else (None, "every token vector at zero (padding)")
    result = integrated_gradients(model, x, target, tokens, steps, base, method=method)
    rows = raw.iloc if hasattr(raw, "iloc") else raw  # a table's rows, or texts / feature vectors
    items = [item(pre, rows[i], x[i], result, i, scores[i], tokens) for i in range(len(raw))]
    check = randomization_check(recipe, model, pre, x, target, tokens, result, method) if sanity else None
    kind = "text" if tokens else ("image" if getattr(pre, "image_shape", None) else "table")
    return Explanation(run_dir, kind, items, result.steps, result.converged, check, None, method, stated,
                       list(pre.image_shape) if kind == "image" else None)


def table_baseline(pre, baseline: str) -> tuple[torch.Tensor, str]:
    """The reference row attributions start from: the training mean (0 after standardization), or raw zeros
    (black, for images: the default there)."""
    if baseline not in BASELINES:
        raise UserError(f"--baseline {baseline!r}: choose one of {', '.join(BASELINES)}")
    if baseline == "zero" or (baseline == "auto" and getattr(pre, "image_shape", None)):
        return pre.inputs(np.zeros((1, len(pre.columns)), dtype=np.float32)), "every input at zero (black)"
    if getattr(pre, "column_encoder", None) is not None:  # numbers at their centre, no category or missing flag on
        return torch.zeros(1, pre.input_dim), "every number at its training centre, no category set"
    return torch.zeros(1, len(pre.columns)), "the training mean of every column"


def item(pre, raw, x: torch.Tensor, result, i: int, score: torch.Tensor, tokens: bool) -> dict:
    values = result.values[i].tolist()
    if tokens:
        names, values = words_of(pre, raw, x.tolist(), values)
    elif getattr(pre, "column_encoder", None) is not None:  # one-hot, indicator and date parts summed onto their column
        names, values = columns_of(pre, values)
    else:
        names = list(pre.columns)
    out = {"input": raw if tokens else table_row(pre, raw, names), "names": names,
           "attributions": [float(v) for v in values], "output": float(result.outputs[i]),
           "baseline_output": float(result.baseline_outputs[i]),
           "completeness_gap": None if torch.isnan(result.gaps[i]) else float(result.gaps[i])}  # occlusion: none
    out |= prediction_of(pre, score)
    return out


def columns_of(pre, values: list[float]) -> tuple[list[str], list[float]]:
    """Attributions of the encoded inputs summed per table column (integrated gradients' completeness holds
    for the sums, so a column's share is the sum of its parts')."""
    totals = dict.fromkeys(pre.column_encoder.used, 0.0)
    for source, value in zip(pre.feature_sources, values):
        totals[source] += value
    return list(totals), list(totals.values())


def table_row(pre, raw, names: list[str]) -> dict:
    """The row as the user gave it: numbers as numbers, categories as text, missing cells as None."""
    if hasattr(raw, "to_dict"):
        return {k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else
                    v.item() if hasattr(v, "item") else v) for k, v in raw.to_dict().items() if k in names}
    return dict(zip(names, map(float, raw)))


def words_of(pre, text: str, ids: list[int], values: list[float]) -> tuple[list[str], list[float]]:
    from honed.explanation.fold import fold_to_words, subword_words, word_pieces

    tokenizer = pre.tokenizer
    if hasattr(tokenizer, "index"):  # the words tokenizer: n-grams and character n-grams folded onto words
        words, pieces = word_pieces(text, tokenizer.index, pre.settings)
        return words, fold_to_words(ids, values, words, pieces)
    inner = getattr(tokenizer, "tokenizer", None)
    pieces = [inner.id_to_token(t) or "?" for t in ids if t != 0] if inner is not None else [str(t) for t in ids]
    return subword_words(pieces, [v for t, v in zip(ids, values) if t != 0])


def prediction_of(pre, score: torch.Tensor) -> dict:
    if pre.task == "regression":
        return {"prediction": float(pre.unscale(score)), "explains": "the predicted value (standardized units)"}
    from honed.evaluation import class_probabilities

    probs = class_probabilities(score.view(1, -1) if score.dim() else score.view(1), pre.task)[0]
    k = int(probs.argmax())
    explains = f"the logit of {pre.labels.names[-1]!r}" if pre.task == "binary" else \
        f"the logit of the predicted class {pre.labels.names[k]!r}"
    return {"prediction": pre.labels.names[k], "probability": float(probs[k]), "explains": explains}


def randomization_check(recipe, model, pre, x, target, tokens: bool, trained, method: str = "ig") -> dict:
    """Adebayo et al.'s model-randomization test: the same architecture, weights drawn afresh."""
    from scipy import stats

    from honed.explanation.attribute import integrated_gradients
    from honed.models import Shape, build_model

    torch.manual_seed(recipe.seed + 1)
    shape = Shape.of_preprocessor(pre)
    fresh = build_model(recipe.model, shape)
    fresh.load_state_dict({k: v for k, v in model.state_dict().items() if k.endswith("idf")}, strict=False)
    if getattr(fresh, "pool", None) is not None and hasattr(fresh.pool, "embedding"):
        torch.nn.init.normal_(fresh.pool.embedding.weight, std=0.1)  # zeros (embedding_init) explain nothing
    random = integrated_gradients(fresh, x, target, tokens, trained.steps, method=method)
    correlations = []
    for a, b, ids in zip(trained.values, random.values, x if tokens else [None] * len(x)):
        keep = (ids != 0) if ids is not None else torch.ones_like(a, dtype=torch.bool)
        if int(keep.sum()) > 2:
            correlations.append(stats.spearmanr(a[keep].numpy(), b[keep].numpy()).statistic)
    median = float(np.nanmedian(correlations)) if correlations else float("nan")
    return {"median_rank_correlation": median, "passed": bool(not np.isnan(median) and abs(median) < 0.5),
            "meaning": "attributions of the trained model against the same architecture with random weights; "
                       "a high correlation means they show the architecture, not what was learned"}


TOP_WORDS = 12
MIN_COUNT = 3  # a word must occur in this many explained texts to rank in the global view


def explain_test_rows(run_dir, *, rows: int = 200, steps: int = 50) -> Explanation:
    """--global: a seeded sample of the test split explained, and per class the words (or columns) whose
    attributions push toward it most, summed over the sample (a binary model's logit: positive values push
    toward its second class, negative ones toward its first)."""
    from honed.api import load_run, refuse_language_model
    from honed.data.build import load_raw, split_raw

    check_steps(steps)
    refuse_language_model(run_dir, "honed explain")
    recipe, model, pre = load_run(run_dir)
    _, _, test = split_raw(load_raw(recipe.data), recipe.data)
    pick = np.random.default_rng(recipe.seed).permutation(len(test))[: min(rows, MAX_INPUTS)]
    if pre.kind == "text":
        raw = [test.x[i] for i in pick]
    elif hasattr(test.x, "iloc"):  # a table's columns
        raw = test.x.iloc[pick].reset_index(drop=True)
    else:
        raw = np.asarray(test.x)[pick].astype(np.float32)
    if pre.kind == "text":
        raw = [t for t in raw if str(t).strip()]
    result = explain_loaded((recipe, model, pre), raw, steps, False, Path(run_dir))
    result.overall = overall(result.items, pre)
    return result


def overall(items: list[dict], pre) -> dict:
    """Per class, the words (or columns) with the largest mean push toward it per input they occur in.
    A binary model explains one logit: a word's net attribution says which class it pushes toward.
    Several classes: each input explains its predicted class, so words are ranked within those inputs."""
    from collections import defaultdict

    binary = pre.task != "multiclass"
    names = pre.labels.names if pre.labels else ["lower", "higher"]
    net: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    seen: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for it in items:
        group = "all" if binary else it["prediction"]
        for name in set(it["names"]):
            seen[group][name] += 1
        for name, value in zip(it["names"], it["attributions"]):
            net[group][name] += value
    least = max(MIN_COUNT, len(items) // 100)  # rare words are not evidence of what the model learned
    out: dict[str, list] = {}
    for group, words in net.items():
        means = [(v / seen[group][w], w) for w, v in words.items() if seen[group][w] >= least or pre.kind != "text"]
        if binary:
            out[names[1]] = ranked([(m, w) for m, w in means if m > 0], seen[group])
            out[names[0]] = ranked([(-m, w) for m, w in means if m < 0], seen[group])
        else:
            out[group] = ranked([(m, w) for m, w in means if m > 0], seen[group])
    return out


def ranked(means: list[tuple[float, str]], seen: dict[str, int]) -> list[dict]:
    return [{"name": w, "mean": m, "inputs": seen[w]} for m, w in sorted(means, reverse=True)[:TOP_WORDS]]


def write_report(explanation: Explanation, out: Path | None = None) -> tuple[Path, Path]:
    """explain.json and explain.html (and saliency PNGs for images) in `out`; by default in the run's own
    folder, whose page is then rebuilt to show a few of them."""
    from honed.explanation.page import page, saliency_png
    from honed.run import write_json, write_text
    from honed.files import atomic_write

    into_run = out is None
    out = Path(explanation.run_dir) / runfiles.EXPLAIN_DIR if into_run else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = write_json(out / runfiles.EXPLAIN_JSON, explanation.to_json())
    pngs = [saliency_png(it, explanation.image_shape) for it in explanation.items] if explanation.image_shape else []
    for i, png in enumerate(pngs):
        atomic_write(out / f"saliency-{i}.png", lambda tmp, png=png: tmp.write_bytes(png))
    html = write_text(out / runfiles.EXPLAIN_HTML, page(explanation, pngs))
    if into_run:
        from honed.report import refresh_report

        refresh_report(explanation.run_dir)
    return data, html
