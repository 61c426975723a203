"""honed's bundled `image_classification` recipe on image archives (class folders under train/ and test/), beside
a baseline measured in the same run: scikit-learn's logistic regression on the same pixels (decoded with Pillow
in its own process). Each end to end as its own process, 2 CPU cores; prints a markdown table.

    python benchmarks/image_suite.py                        # ../shared/data/images/mnist.tar.gz at 28 pixels
    python benchmarks/image_suite.py --archives A.tar.gz --size 32 --set train.epochs=20
    python benchmarks/image_suite.py --archives A.tar.gz --size 32 --recipe image_pretrained   # from ImageNet

Nothing is chosen on the test images: the recipe's own validation split (20% of train) picks its epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import ROOT, table, timed

SHARED_IMAGES = ROOT.parent / "shared" / "data" / "images"

BASELINE = r"""
import io, json, sys, tarfile
import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
path, size = sys.argv[1], int(sys.argv[2])
x = {"train": [], "test": []}; y = {"train": [], "test": []}
with tarfile.open(path) as archive:
    for m in archive:
        parts = m.name.split("/")
        if not m.isfile() or len(parts) < 4 or parts[-1].startswith("."):
            continue
        image = Image.open(io.BytesIO(archive.extractfile(m).read())).convert("L").resize((size, size))
        x[parts[1]].append(np.asarray(image, dtype=np.float32).ravel() / 255); y[parts[1]].append(parts[2])
model = LogisticRegression(max_iter=100).fit(np.stack(x["train"]), y["train"])
print(json.dumps({"accuracy": float(model.score(np.stack(x["test"]), y["test"]))}))
"""


def honed(archive: Path, size: int, overrides: list[str], recipe: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "honed", "train", recipe, "--out", f"{tmp}/run", "--quiet",
               "--set", f"data.path={archive}", "--set", f"data.size={size}"] + [a for o in overrides
                                                                                  for a in ("--set", o)]
        wall, peak, _ = timed(cmd, {"HONED_CACHE": f"{tmp}/cache"})
        summary = json.loads(Path(f"{tmp}/run/summary.json").read_text())
    return {"accuracy": summary["test"]["accuracy"], "val_accuracy": summary["val"]["accuracy"], "seconds": wall,
            "peak_mb": peak, "data_seconds": summary["timing"]["data"], "training_seconds": summary["timing"]["training"],
            "epochs": summary["epochs_run"]}


def baseline(archive: Path, size: int) -> dict:
    wall, peak, out = timed([sys.executable, "-c", BASELINE, str(archive), str(size)])
    return json.loads(out.strip().splitlines()[-1]) | {"seconds": wall, "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archives", nargs="*", type=Path, default=[SHARED_IMAGES / "mnist.tar.gz"])
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--recipe", default="image_classification")
    args = parser.parse_args()
    rows = []
    for archive in args.archives:
        base, ours = baseline(archive, args.size), honed(archive, args.size, args.overrides, args.recipe)
        rows.append([archive.name, f"{100 * base['accuracy']:.2f}%", f"{100 * ours['accuracy']:.2f}%",
                     f"{100 * (ours['accuracy'] - base['accuracy']):+.2f}", f"{base['seconds']:.1f} s",
                     f"{ours['seconds']:.1f} s ({ours['data_seconds']:.0f} s decoding, {ours['epochs']} epochs in "
                     f"{ours['training_seconds']:.0f} s)", f"{ours['seconds'] / base['seconds']:.1f}x",
                     f"{ours['peak_mb']:,.0f}"])
        print(" | ".join(rows[-1]), f"(validation {100 * ours['val_accuracy']:.2f}%)", file=sys.stderr, flush=True)
    print(table(["archive", "logistic regression on pixels", f"honed {args.recipe}", "points",
                 "baseline time", "honed time", "ratio", "honed peak MB"], rows))


if __name__ == "__main__":
    main()
