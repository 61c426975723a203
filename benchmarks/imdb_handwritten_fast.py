"""A hand-written PyTorch version of honed's imdb_fast recipe: the baseline it is measured against.

Plain Python preprocessing (regex words, Counter vocabulary of 100k words, crc32-hashed
bigrams in 2M buckets, each token once per review), then EmbeddingBag(mean, sparse) 16 ->
one logit, SparseAdam for the table and Adam for the head, lr 0.1 decayed linearly to 0,
batch 256, one epoch, 20% validation: the recipe's settings, written the usual PyTorch way
(padded rows with padding_idx, torch.optim.SparseAdam). Prints one JSON line per epoch (seconds since start,
test accuracy) and a final line with the totals.

    python benchmarks/imdb_handwritten_fast.py ../shared/data/imdb/aclImdb_v1.tar.gz
"""

import json
import math
import re
import sys
import time
import zlib
from collections import Counter

START = time.perf_counter()

import torch  # noqa: E402
from torch import nn  # noqa: E402

from imdb_handwritten import read, split  # noqa: E402

NUM_WORDS, MAX_LEN, BUCKETS, DIM, EPOCHS, BATCH, LR = 100_000, 500, 2_000_000, 16, 1, 256, 0.1
TOKEN = re.compile(r"[\w']+")


def tokens(text):
    return TOKEN.findall(text.replace("<br />", " ").lower())[:MAX_LEN]


def encode(docs, index):
    rows = []
    for doc in docs:
        ids = {index.get(w, 1) for w in doc}
        ids |= {NUM_WORDS + zlib.crc32(f"{a} {b}".encode()) % BUCKETS for a, b in zip(doc, doc[1:])}
        rows.append(sorted(ids))
    out = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for i, ids in enumerate(rows):
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        scores = torch.cat([model(x[i : i + 1024]) for i in range(0, len(x), 1024)])
    model.train()
    return ((scores > 0).float() == y).float().mean().item()


def main(path):
    torch.manual_seed(0)
    data = read(path)
    train, _ = split(data["train"])
    train_tok = [tokens(t) for t, _ in train]
    counts = Counter(w for doc in train_tok for w in doc)
    index = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(NUM_WORDS - 2))}
    x_train, x_test = encode(train_tok, index), encode([tokens(t) for t, _ in data["test"]], index)
    y_train = torch.tensor([y for _, y in train])
    y_test = torch.tensor([y for _, y in data["test"]])
    prep = time.perf_counter() - START

    emb = nn.EmbeddingBag(NUM_WORDS + BUCKETS, DIM, mode="mean", padding_idx=0, sparse=True)
    nn.init.uniform_(emb.weight, -0.05, 0.05)
    with torch.no_grad():
        emb.weight[0].zero_()
    head = nn.Linear(DIM, 1)
    model = nn.Sequential(emb, head, nn.Flatten(0))
    opts = [torch.optim.SparseAdam([emb.weight], lr=LR), torch.optim.Adam(head.parameters(), lr=LR)]
    steps, step = EPOCHS * math.ceil(len(y_train) / BATCH), 0
    t0, epochs = time.perf_counter(), []
    for _ in range(EPOCHS):
        perm = torch.randperm(len(y_train))
        for i in range(0, len(perm), BATCH):
            idx = perm[i : i + BATCH]
            for opt in opts:
                opt.zero_grad()
                for group in opt.param_groups:
                    group["lr"] = LR * (1 - step / steps)
            nn.functional.binary_cross_entropy_with_logits(model(x_train[idx]), y_train[idx]).backward()
            for opt in opts:
                opt.step()
            step += 1
        seconds = time.perf_counter() - START
        epochs.append({"seconds": seconds, "accuracy": accuracy(model, x_test, y_test)})
        print(json.dumps(epochs[-1]), flush=True)
    train_s = time.perf_counter() - t0
    print(json.dumps({"accuracy": epochs[-1]["accuracy"], "preprocess_seconds": prep, "train_seconds": train_s,
                      "total_seconds": time.perf_counter() - START, "epochs": epochs}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/imdb/aclImdb_v1.tar.gz")
