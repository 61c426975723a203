"""The data: class imbalance, duplicates within the training rows and between training and test
(leakage), identical inputs with conflicting labels, one feature or token that gives the label away,
constant features, empty and cut texts, words outside the vocabulary, and a validation split too small
to tell recipes apart. Rows are compared as the model sees them (after tokenizing or standardizing)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from honed.data.profile import sample_rows
from honed.diagnosis.checks import check
from honed.diagnosis.evidence import RunEvidence
from honed.diagnosis.finding import Finding, change

EXAMPLES = 3
TOKEN_ROWS = 5000  # training rows sampled to look for a token that gives the label away
SHOWN = 80  # characters of an example text


def row_keys(x) -> list[bytes]:
    """One key per row: its token ids, or its feature values, as bytes."""
    if hasattr(x, "offsets"):
        values, offsets = x.values.numpy(), x.offsets.numpy()
        return [values[offsets[i]:offsets[i + 1]].tobytes() for i in range(len(offsets) - 1)]
    flat = x.reshape(len(x), -1).numpy() if isinstance(x, torch.Tensor) else np.asarray(x).reshape(len(x), -1)
    return [row.tobytes() for row in np.ascontiguousarray(flat)]


def short(text: str) -> str:
    text = " ".join(str(text).split())
    return repr(text[:SHOWN] + ("…" if len(text) > SHOWN else ""))


@check("class_imbalance")
def class_imbalance(ev: RunEvidence) -> list[Finding]:
    counts = ((ev.summary.get("data") or {}).get("class_counts") or {}).get("train")
    labels = ev.summary.get("labels") or []
    if not counts or len(counts) < 2 or min(counts) == 0 and max(counts) == 0:
        return []
    counts = np.asarray(counts, dtype=float)
    ratio = counts.max() / max(counts.min(), 1)
    if ratio < 4:
        return []
    small, big = int(counts.argmin()), int(counts.argmax())
    weights = [round(float(counts.sum() / (len(counts) * max(c, 1))), 3) for c in counts]  # "balanced"
    names = set(ev.recipe.metrics)
    advice = [change(**{"loss.class_weights": weights})]
    if not names & {"f1", "auroc"}:
        wanted = ["accuracy", "f1"] + (["auroc"] if ev.task == "binary" else [])
        advice.append(change(**{"metrics": list(dict.fromkeys([*ev.recipe.metrics, *wanted]))}))
    return [Finding("class_imbalance", "problem" if ratio >= 10 else "warning",
                    f"class {labels[small] if labels else small!r} is {counts[small] / counts.sum():.1%} of the training "
                    f"rows ({int(counts[small]):,} of {int(counts.sum()):,}); always answering "
                    f"{labels[big] if labels else big!r} is {counts[big] / counts.sum():.1%} accurate", advice,
                    hint="judge the run by f1 or AUROC rather than accuracy", strength=ratio)]


def texts_of(ev: RunEvidence, split: str, rows: list[int]) -> list[str]:
    texts = ev.bundle.test_texts if split == "test" else None
    if texts is None:
        return [f"{split} row {i}" for i in rows]
    return [short(texts[i]) for i in rows]


@check("duplicates", needs="data")
def duplicates(ev: RunEvidence) -> list[Finding]:
    if not ev.can_probe:
        return []
    train, test = ev.bundle.train, ev.bundle.test
    train_keys = row_keys(train.x)
    seen: dict[bytes, int] = {}
    repeated = 0
    for i, key in enumerate(train_keys):
        if key in seen:
            repeated += 1
        else:
            seen[key] = i
    leaked = [i for i, key in enumerate(row_keys(test.x)) if key in seen]
    found = []
    if leaked:
        share = len(leaked) / max(len(test), 1)
        found.append(Finding("train_test_leakage", "problem" if share >= 0.01 else "warning",
                             f"{len(leaked):,} of {len(test):,} test rows ({share:.1%}) are identical to a training row "
                             f"as the model sees them, e.g. {', '.join(texts_of(ev, 'test', leaked[:EXAMPLES]))}",
                             hint="remove those rows from the training file: the test score counts them as seen",
                             strength=share * 100))
    if repeated:
        share = repeated / max(len(train), 1)
        if share >= 0.005:
            found.append(Finding("duplicate_training_rows", "warning" if share >= 0.05 else "note",
                                 f"{repeated:,} training rows ({share:.1%}) repeat an earlier training row",
                                 hint="deduplicate the training file; repeated rows weigh more than the others",
                                 strength=share))
    return found


@check("conflicting_labels", needs="data")
def conflicting_labels(ev: RunEvidence) -> list[Finding]:
    if not ev.can_probe or ev.task not in ("binary", "multiclass"):
        return []
    train = ev.bundle.train
    labels = train.y.long().tolist() if train.y.dim() == 1 else train.y[:, 0].long().tolist()
    groups: dict[bytes, set] = defaultdict(set)
    count: dict[bytes, int] = defaultdict(int)
    for key, label in zip(row_keys(train.x), labels):
        groups[key].add(label)
        count[key] += 1
    conflicted = [k for k, ls in groups.items() if len(ls) > 1]
    if not conflicted:
        return []
    rows = sum(count[k] for k in conflicted)
    share = rows / max(len(labels), 1)
    return [Finding("conflicting_labels", "problem" if share >= 0.02 else "warning",
                    f"{len(conflicted):,} inputs appear with different labels ({rows:,} training rows, {share:.1%}): "
                    "no model can be right on all of them", hint="check how those rows were labelled",
                    strength=share * 100)]


def leaking_columns(ev: RunEvidence) -> list[str]:
    """Features that alone predict the target on the validation rows (or the training rows without one)."""
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    b = ev.bundle
    x, y = b.train.x.reshape(len(b.train), -1).numpy(), b.train.y.numpy()
    check_x, check_y = (b.val.x.reshape(len(b.val), -1).numpy(), b.val.y.numpy()) if b.val is not None else (x, y)
    if x.shape[1] > 200:  # images and wide tables: a single pixel does not leak a label
        return []
    columns = getattr(b.preprocessor, "feature_names", [str(i) for i in range(x.shape[1])])
    found = []
    for j in range(x.shape[1]):
        if ev.task == "regression":
            if np.std(x[:, j]) == 0 or np.std(y) == 0:
                continue
            tree = DecisionTreeRegressor(max_depth=6, random_state=0).fit(x[:, j:j + 1], y)
            score = 1 - np.mean((tree.predict(check_x[:, j:j + 1]) - check_y) ** 2) / max(np.var(check_y), 1e-12)
            if score >= 0.99:
                found.append(f"{columns[j]} (R² {score:.3f} alone)")
        else:
            tree = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x[:, j:j + 1], y)
            accuracy = float(np.mean(tree.predict(check_x[:, j:j + 1]) == check_y))
            majority = np.bincount(check_y.astype(np.int64)).max() / len(check_y)
            if accuracy >= 0.99 and accuracy - majority >= 0.9 * (1 - majority):
                found.append(f"{columns[j]} (accuracy {accuracy:.1%} alone)")
    return found


def leaking_tokens(ev: RunEvidence) -> list[str]:
    """Tokens whose presence alone marks one class: precision >= 99% and recall >= 95% over 30+ rows.

    Counted with bincounts over the ids back to back (no rows x vocabulary matrix): occurrences first, to
    keep the few candidate tokens, then the rows that really hold each candidate."""
    b = ev.bundle
    x, y = b.train.x, b.train.y.long().numpy()
    if y.ndim != 1 or len(y) < 30:
        return []
    # a seeded sample of rows: a token that gives a class away does so in any few thousand rows
    keep = sample_rows(len(y), TOKEN_ROWS)
    offsets, all_values = x.offsets.numpy(), x.values.numpy()
    parts = [all_values[offsets[i]:offsets[i + 1]] for i in keep]
    values = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    y = y[keep]
    row_of = np.repeat(np.arange(len(keep)), [len(p) for p in parts])
    class_of = y[row_of]
    size = int(values.max()) + 1 if len(values) else 0
    total = np.bincount(values, minlength=size)
    sizes = np.bincount(y)
    vocab = getattr(getattr(b.preprocessor, "tokenizer", None), "vocab", None) or []
    labels = ev.summary.get("labels") or [str(c) for c in range(len(sizes))]
    found = []
    for c in np.flatnonzero(sizes >= 30):
        in_class = np.bincount(values[class_of == c], minlength=size)
        # occurrences: a token that marks the class must be (almost) only there, and at least in most of its rows
        candidates = np.flatnonzero((in_class >= 0.99 * total) & (in_class >= 0.95 * sizes[c]) & (total >= 30))
        for t in candidates[:100]:
            rows = np.unique(row_of[values == t])
            precision = float(np.mean(y[rows] == c))
            recall = float(np.sum(y[rows] == c) / sizes[c])
            if precision >= 0.99 and recall >= 0.95 and len(rows) >= 30:
                name = repr(vocab[t]) if t < len(vocab) else f"hashed n-gram #{t}"
                found.append(f"{name} marks {labels[c]!r} ({precision:.1%} precise, in {recall:.0%} of its rows)")
            if len(found) >= EXAMPLES:
                return found
    return found


@check("leaking_feature", needs="data")
def leaking_feature(ev: RunEvidence) -> list[Finding]:
    if not ev.can_probe or ev.task == "":
        return []
    b = ev.bundle
    if b.input_kind == "tokens":
        if ev.task == "regression" or not hasattr(b.train.x, "offsets"):
            return []
        found = leaking_tokens(ev)
    else:
        found = leaking_columns(ev)
    if not found:
        return []
    return [Finding("leaking_feature", "problem", "one input alone gives the target away: " + "; ".join(found),
                    hint="check that it is known before the label is (else drop it: data.columns lists the ones kept)",
                    strength=len(found))]


@check("constant_features")
def constant_features(ev: RunEvidence) -> list[Finding]:
    constant = ev.profile.get("constant") or []
    if not constant:
        return []
    kept = [f["name"] for f in ev.profile.get("features", []) if f["name"] not in constant]
    sources = {f"{c['name']}": c for c in ev.profile.get("columns", [])}  # encoded tables: advise by column
    if sources:
        advice = [change(**{f"data.column_types.{name}": "drop" for name in constant if name in sources})]
        advice = advice if any(name in sources for name in constant) else []
    else:
        advice = [change(**{"data.columns": kept})] if kept and ev.recipe.data.source == "tabular" else []
    return [Finding("constant_features", "note", f"{len(constant)} feature(s) never change on the training rows: "
                    + ", ".join(constant[:8]) + ("…" if len(constant) > 8 else ""), advice,
                    hint="they cannot help the model", strength=len(constant))]


@check("text_lengths")
def text_lengths(ev: RunEvidence) -> list[Finding]:
    p = ev.profile
    if not p.get("texts_measured"):
        return []
    found = []
    if p.get("empty_share", 0) >= 0.01:
        found.append(Finding("empty_texts", "warning", f"{p['empty_share']:.1%} of the training texts have no word "
                             f"(of {p['texts_measured']:,} measured)", hint="drop them or fill them in the data file",
                             strength=p["empty_share"]))
    if p.get("truncated_share", 0) >= 0.1:
        longer = int(min(10_000_000, max(p["max_len"] * 2, round(p["words_p90"] * 1.1))))
        found.append(Finding("texts_cut", "warning", f"{p['truncated_share']:.0%} of the training texts are longer than "
                             f"data.max_len = {p['max_len']} words (90% have at most {p['words_p90']:.0f})",
                             [change(**{"data.max_len": longer})], strength=p["truncated_share"]))
    oov = p.get("out_of_vocabulary_share")
    if oov is not None and oov >= 0.05 and p.get("vocabulary_size"):
        found.append(Finding("out_of_vocabulary", "warning", f"{oov:.1%} of the training words are outside the "
                             f"{p['vocabulary_size']:,}-entry vocabulary", [change(**{"data.num_words": 4 * getattr(ev.recipe.data, "num_words", p["vocabulary_size"])})],
                             strength=oov))
    return found


@check("small_validation")
def small_validation(ev: RunEvidence) -> list[Finding]:
    val = ev.summary.get("val") or {}
    ci = (val.get("ci95") or {}).get("accuracy")
    rows = int((ev.summary.get("sizes") or {}).get("val", 0))
    if not ci or not rows:
        return []
    half = (ci[1] - ci[0]) / 2
    if half < 0.025:
        return []
    advice = []
    if ev.recipe.data.val_fraction and ev.recipe.data.val_fraction < 0.3:
        advice.append(change(**{"data.val_fraction": round(min(0.3, 2 * ev.recipe.data.val_fraction), 2)}))
    return [Finding("small_validation", "warning", f"{rows:,} validation rows give accuracy ±{100 * half:.1f} points "
                    f"(95% interval {100 * ci[0]:.1f}-{100 * ci[1]:.1f}%): recipes closer than that cannot be told apart",
                    advice, hint="or compare recipes with honed cv", strength=half)]
