"""Fine-tuning all-MiniLM-L6-v2 on an IMDB sample four ways: every weight, LoRA (r = 8), the encoder
frozen (head only), and LoRA with activation checkpointing. Same sample, same split, same epochs, each
run its own process (so its peak memory is its own).

Run:  .venv/bin/python benchmarks/imdb_peft.py [--data ARCHIVE] [--train-rows 1000] [--test-rows 1000]
      (on a GPU: --train-rows 25000 --test-rows 25000 --set train.precision=bf16-mixed)

Prints a markdown table: test accuracy, trainable parameters, seconds per step, peak memory (CPU RSS of
the process; on a GPU also torch.cuda.max_memory_allocated), Adam's state and what a checkpoint holds.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

from common import SHARED_IMDB, table, timed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

VARIANTS = {  # name -> (recipe overrides, learning rates tried: the one with the best validation accuracy is kept)
    "full fine-tuning": ([], [5e-5]),  # BERT's fine-tuning rate (2e-5..5e-5): pretrained weights move little
    "LoRA r=8 (query, value)": (["model.adapter.r=8", "model.adapter.alpha=16"], [5e-4, 1e-3, 2e-3]),
    "frozen encoder (head only)": (["model.freeze=encoder"], [1e-3, 3e-3, 1e-2]),
    "LoRA r=8 + activation checkpointing": (["model.adapter.r=8", "model.adapter.alpha=16",
                                             "train.activation_checkpointing=true"], "LoRA r=8 (query, value)"),
}


def write_sample(archive: str, train_rows: int, test_rows: int, folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Balanced, seeded samples of IMDB's train and test splits as text,label CSVs."""
    import pandas as pd

    from honed.data.sources.imdb import read_archive

    reviews = read_archive(Path(archive))
    rng = random.Random(seed)
    paths = []
    for split, rows in (("train", train_rows), ("test", test_rows)):
        picked = []
        for label in ("pos", "neg"):
            pool = [text for s, lab, _, text in reviews if s == split and lab == label]
            picked += [{"text": t, "label": label} for t in rng.sample(pool, rows // 2)]
        rng.shuffle(picked)
        paths.append(folder / f"{split}.csv")
        pd.DataFrame(picked).to_csv(paths[-1], index=False)
    return paths[0], paths[1]


def run_variant(overrides: list[str], train_csv: Path, test_csv: Path, extra: list[str], out: Path) -> dict:
    sets = [f"data.source=text_files", f"data.train={train_csv}", f"data.test={test_csv}",
            "data.max_train_rows=null", "data.val_fraction=0.2",
            "train.checkpoint.every_epochs=1", "train.checkpoint.keep=1", "train.checkpoint.keep_final=true"]
    sets += overrides + extra
    cmd = [sys.executable, "-m", "honed", "train", "recipes/imdb_minilm.yaml", "--out", str(out), "--quiet"]
    cmd += [a for s in sets for a in ("--set", s)]
    wall, peak_mb, _ = timed(cmd)
    summary = json.loads((out / "summary.json").read_text())
    recipe_batch = 16
    steps = summary["epochs_run"] * -(-summary["sizes"]["train"] // recipe_batch)
    checkpoint = max((out / "checkpoints").glob("*.pt"), key=lambda p: p.stat().st_mtime)
    return {"accuracy": summary["test"]["accuracy"], "ci": summary["test"]["ci95"]["accuracy"],
            "val": summary["val"]["accuracy"],
            "trainable": summary["trainable_params"], "params": summary["params"],
            "step_s": summary["train_seconds"] / steps, "peak_mb": peak_mb, "wall": wall,
            "adam_mb": summary["trainable_params"] * 8 / 1e6, "checkpoint_mb": checkpoint.stat().st_size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_IMDB), help="IMDB archive or extracted folder")
    parser.add_argument("--train-rows", type=int, default=1000)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--set", action="append", default=[], help="more recipe overrides for every variant")
    parser.add_argument("--rates", help="one learning rate per variant, comma-separated, in the table's order: "
                        "skips the search (e.g. the rates an earlier run chose, to time the variants alone)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        train_csv, test_csv = write_sample(args.data, args.train_rows, args.test_rows, Path(tmp))
        results, runs = {}, 0
        given = [float(r) for r in args.rates.split(",")] if args.rates else None
        for i, (name, (overrides, rates)) in enumerate(VARIANTS.items()):
            rates = [results[rates]["lr"]] if isinstance(rates, str) else rates  # the same rate as that variant
            rates = [given[i]] if given else rates
            tried = []
            for lr in rates:
                runs += 1
                r = run_variant(overrides + [f"optimizer.lr={lr}"], train_csv, test_csv, args.set,
                                Path(tmp) / f"run{runs}")
                tried.append(r | {"lr": lr})
                print(f"{name}, lr {lr}: validation {r['val']:.2%}", file=sys.stderr, flush=True)
            results[name] = max(tried, key=lambda r: r["val"])  # chosen on validation, never on test
    full = results["full fine-tuning"]
    for name, r in results.items():
        rows.append([name, f"{r['lr']:g}", f"{r['val']:.1%}", f"{r['accuracy']:.2%} ({r['ci'][0]:.1%}-{r['ci'][1]:.1%})",
                     f"{r['accuracy'] - full['accuracy']:+.2%}".replace("%", " pts"),
                     f"{r['trainable']:,} ({r['trainable'] / r['params']:.2%})", f"{r['step_s']:.2f}",
                     f"{r['step_s'] / full['step_s']:.2f}x", f"{r['peak_mb']:,.0f}", f"{r['adam_mb']:.1f}",
                     f"{r['checkpoint_mb']:.1f}"])
    print(f"IMDB sample: {args.train_rows} training reviews (20% of them validate), {args.test_rows} test reviews, "
          "128 word pieces, 2 epochs, batch 16")
    print(table(["variant", "lr (best on validation)", "validation", "test accuracy (95% CI)", "vs full", "trainable parameters", "s per step",
                 "step vs full", "peak RSS MB", "Adam state MB", "checkpoint MB"], rows))


if __name__ == "__main__":
    main()
