"""TF-IDF word 1-2 grams + logistic regression (scikit-learn) on IMDB: the classic strong linear baseline.

Trains on all 25,000 training reviews (no validation needed: nothing is tuned), tests on the
official 25,000. Prints one JSON line with accuracy and timings.

    python benchmarks/imdb_sklearn_tfidf.py ../shared/data/imdb/aclImdb_v1.tar.gz
"""

import json
import sys
import time

START = time.perf_counter()

from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from imdb_handwritten import read  # noqa: E402


def main(path):
    data = read(path)
    texts = {k: [t for t, _ in v] for k, v in data.items()}
    labels = {k: [y for _, y in v] for k, v in data.items()}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x_train = vectorizer.fit_transform(texts["train"])
    x_test = vectorizer.transform(texts["test"])
    prep = time.perf_counter() - START
    model = LogisticRegression(C=4.0, max_iter=1000).fit(x_train, labels["train"])
    acc = float((model.predict(x_test) == labels["test"]).mean())
    total = time.perf_counter() - START
    print(json.dumps({"accuracy": acc, "preprocess_seconds": prep, "train_seconds": total - prep,
                      "total_seconds": total, "epochs": [{"seconds": total, "accuracy": acc}]}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/imdb/aclImdb_v1.tar.gz")
