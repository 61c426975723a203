"""honed's bundled text_classification recipe beside the classic TF-IDF + logistic regression baseline,
on every text set given, each run end to end as its own process (imports included, a cold
preprocessing cache), on the same splits and the same machine. Prints a markdown table.

    python benchmarks/text_suite.py                      # ../shared/data/text/{cr,mpqa,trec}
    python benchmarks/text_suite.py --sets DIR [DIR ...] # folders with train.csv and test.csv
    python benchmarks/text_suite.py --imdb               # also IMDB (the archive, as CSV files made once)
    python benchmarks/text_suite.py --snippets           # also two-sentence snippets of IMDB reviews (10,662);
                                                         # --sets --snippets: those alone
    python benchmarks/text_suite.py --recipe my.yaml --set key=value ...
    python benchmarks/text_suite.py --tune 120           # `honed tune --budget 120` instead of `honed train`

Nothing is tuned on the test files: the recipe runs as bundled.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SHARED_IMDB, table

SHARED_TEXT = ROOT.parent / "shared" / "data" / "text"


def baseline(train: Path, test: Path) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "text_baseline.py"), str(train), str(test)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def honed(recipe: str, train: Path, test: Path, overrides: list[str], tune: float | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        command = ["tune", recipe, "--budget", f"{tune:g}"] if tune else ["train", recipe]
        cmd = [sys.executable, "-m", "honed", *command, "--out", f"{tmp}/run", "--quiet",
               "--set", f"data.train={train}", "--set", f"data.test={test}"]
        cmd += [a for o in overrides for a in ("--set", o)]
        env = {**os.environ, "HONED_CACHE": f"{tmp}/cache"}  # cold: preprocessing is part of the time
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, cwd=ROOT, env=env)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        summary = json.loads(Path(f"{tmp}/run/summary.json").read_text())
    peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
    rows = summary["sizes"]["train"] + (summary["sizes"].get("val") or 0)  # a search's holdout is training rows
    return {"accuracy": summary["test"]["accuracy"], "seconds": wall, "peak_mb": peak_mb, "rows": rows}


def imdb_csvs(folder: Path) -> Path:
    """IMDB's train and test splits as text,label CSV files (made once, under `folder`)."""
    out = folder / "imdb"
    if not (out / "test.csv").is_file():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import pandas as pd
        from imdb_handwritten import read

        out.mkdir(parents=True, exist_ok=True)
        for split, rows in read(str(SHARED_IMDB)).items():
            pd.DataFrame(rows, columns=["text", "label"]).to_csv(out / f"{split}.csv", index=False)
    return out


def snippet_csvs(folder: Path) -> Path:
    """A mid-size set of short texts made from IMDB (made once, under `folder`): the first two sentences (at most 300
    characters) of 8,000 training and 2,662 test reviews drawn with seed 0, labelled pos/neg: the size and length
    of a short-review set (10,662 texts of a few dozen words), where the sentence encoder's cost is close to the
    search's share."""
    out = folder / "imdb_snippets"
    if not (out / "test.csv").is_file():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import random
        import re

        import pandas as pd
        from imdb_handwritten import read

        out.mkdir(parents=True, exist_ok=True)
        draw = random.Random(0)
        for (split, rows), n in zip(read(str(SHARED_IMDB)).items(), (8000, 2662)):
            rows = draw.sample(rows, n)
            texts = (re.split(r"(?<=[.!?])\s+", text.replace("<br />", " ").strip()) for text, _ in rows)
            cut = [(" ".join(sentences[:2])[:300], label) for sentences, (_, label) in zip(texts, rows)]
            pd.DataFrame(cut, columns=["text", "label"]).to_csv(out / f"{split}.csv", index=False)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="*", type=Path, help="folders holding train.csv and test.csv")
    p.add_argument("--imdb", action="store_true", help="add IMDB (written once as CSV files to --work)")
    p.add_argument("--snippets", action="store_true", help="add two-sentence IMDB snippets (written once to --work)")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "honed-text-suite")
    p.add_argument("--recipe", default="text_classification")
    p.add_argument("--tune", type=float, metavar="SECONDS", help="run honed tune with this budget instead of train")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    shared = sorted(d for d in SHARED_TEXT.iterdir() if (d / "train.csv").is_file())
    sets = args.sets if args.sets is not None else shared
    if args.imdb:
        sets.append(imdb_csvs(args.work))
    if args.snippets:
        sets.append(snippet_csvs(args.work))
    rows, gains = [], []
    for folder in sets:
        train, test = folder / "train.csv", folder / "test.csv"
        base = baseline(train, test)
        ours = honed(args.recipe, train, test, args.overrides, args.tune)
        gain = 100 * (ours["accuracy"] - base["accuracy"])
        gains.append(gain)
        rows.append([folder.name, f"{ours['rows']:,}", f"{100 * base['accuracy']:.2f}%", f"{100 * ours['accuracy']:.2f}%",
                     f"{gain:+.2f}", f"{base['seconds']:.1f} s", f"{ours['seconds']:.1f} s",
                     f"{ours['seconds'] / base['seconds']:.1f}x", f"{ours['peak_mb']:.0f}"])
        print(f"{folder.name}: baseline {base}, honed {ours}", file=sys.stderr, flush=True)
    what = f"honed tune {args.recipe} --budget {args.tune:g}" if args.tune else f"honed {args.recipe}"
    print(table(["set", "train rows", "TF-IDF + LR", what, "points", "baseline time",
                 "honed time", "time ratio", "honed peak MB"], rows))
    print(f"\nmean gain over the baseline: {sum(gains) / len(gains):+.2f} points on {len(gains)} sets")


if __name__ == "__main__":
    main()
