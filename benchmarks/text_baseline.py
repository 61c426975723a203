"""The classic text-classification baseline, as a ten-line script: TF-IDF word 1-2 grams + logistic
regression (scikit-learn, C = 5), trained on the whole training file, scored once on the test file.
Prints one JSON line: accuracy and seconds from the interpreter's start (imports included).

    python benchmarks/text_baseline.py TRAIN.csv TEST.csv [--text-column text] [--label-column label]
"""

import time

START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402

import pandas as pd  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("train")
    p.add_argument("test")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    args = p.parse_args()
    train, test = pd.read_csv(args.train), pd.read_csv(args.test)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2))
    x_train = vectorizer.fit_transform(train[args.text_column].astype(str))
    model = LogisticRegression(C=5, max_iter=1000).fit(x_train, train[args.label_column].astype(str))
    predicted = model.predict(vectorizer.transform(test[args.text_column].astype(str)))
    accuracy = float((predicted == test[args.label_column].astype(str)).mean())
    print(json.dumps({"accuracy": accuracy, "seconds": time.perf_counter() - START}))


if __name__ == "__main__":
    main()
