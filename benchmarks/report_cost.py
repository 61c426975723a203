"""What the run report costs: each text set trained twice in its own process, with the page
(`train.report=true`, the default) and without it, then the page rebuilt alone (`honed report`).
Prints a markdown table: wall seconds of both runs, their ratio, the rebuild's seconds, the page's size.

    python benchmarks/report_cost.py            # ../shared/data/text/{cr,mpqa,trec}
    python benchmarks/report_cost.py --imdb     # also IMDB (text_suite's CSV files of the archive)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, table, timed
from text_suite import SHARED_TEXT, imdb_csvs


def train(recipe: str, folder: Path, out: Path, report: bool) -> float:
    cmd = [sys.executable, "-m", "honed", "train", recipe, "--out", str(out), "--quiet",
           "--set", f"data.train={folder / 'train.csv'}", "--set", f"data.test={folder / 'test.csv'}",
           "--set", f"train.report={str(report).lower()}"]
    wall, _, _ = timed(cmd)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="text_classification")
    parser.add_argument("--imdb", action="store_true")
    args = parser.parse_args()
    sets = [SHARED_TEXT / name for name in ("cr", "mpqa", "trec")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.imdb:
            sets.append(imdb_csvs(Path(tmp)))
        for folder in sets:
            train(args.recipe, folder, Path(tmp) / f"{folder.name}-warm", False)  # the preprocessing cache, warm
            without = train(args.recipe, folder, Path(tmp) / f"{folder.name}-off", False)
            with_page = train(args.recipe, folder, Path(tmp) / f"{folder.name}-on", True)
            run = Path(tmp) / f"{folder.name}-on"
            started = time.perf_counter()
            timed([sys.executable, "-m", "honed", "report", str(run)])
            rebuild = time.perf_counter() - started
            size = (run / "report.html").stat().st_size / 1024
            rows.append([folder.name, f"{without:.2f}", f"{with_page:.2f}", f"{with_page / without:.2f}x",
                         f"{rebuild:.2f}", f"{size:.0f}"])
    print(table(["set", "train, no page (s)", "train with report.html (s)", "ratio", "honed report alone (s)",
                 "page KB"], rows))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "benchmarks"))
    main()
