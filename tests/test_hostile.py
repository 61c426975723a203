"""Hostile but realistic input: every case is one row of a table — the files to lay down, the command,
and what the one error line must say. Each runs the real `honed` command in a fresh process and must
exit with code 2, one line on stderr, no traceback; a few cases check correct output instead.

Adding a case is adding a row to CASES (files are written into the test's folder; {tmp} in an
argument is that folder).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

TINY_TEXT = "text,label\n" + "".join(f"good fine great {i},pos\nbad awful poor {i},neg\n" for i in range(20))
TINY_TABLE = "a,b,y\n" + "".join(f"{i},{i % 7},{i * 0.5}\n" for i in range(40))
TEXT_RUN = ["--set", "data.source=text_files", "--set", "data.train={tmp}/t.csv", "--set", "model.name=bag",
            "--set", "train.epochs=1"]
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
) + "search: *i\n"

# a small .gz that expands 1,000-fold: a table (pandas' path) and texts (the standard library's path)
GZ_BOMB = gzip.compress(b"a,b,y\n" + b"1,2,3\n" * 5_000_000)
GZ_TEXT_BOMB = gzip.compress(b"text,label\n" + b"good fine great,pos\n" * 2_000_000)


def zipped(name: str, data: bytes) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


ZIP_BOMB = zipped("t.csv", b"a,b,y\n" + b"1,2,3\n" * 3_000_000)


def tarred(name: str, data: bytes) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()

# (id, files {name: text or bytes}, command arguments, fragments the error line must hold)
MINILM_RUN = ["imdb_minilm", "--set", "data.source=text_files", "--set", "data.train={tmp}/t.csv", "--set",
              "data.val_fraction=0.25", "--set", "train.epochs=1", "--quiet"]

MIXED_TABLE = "n,city,y\n" + "".join(f"{i},{'ab'[i % 2]},{i % 3}\n" for i in range(40))
TABULAR_RUN = ["train", "tabular", "--set", "data.path={tmp}/t.csv", "--set", "data.target=y", "--set", "train.epochs=1",
               "--quiet"]

CASES = [
    ("tabular-target-with-a-missing-cell", {"t.csv": "a,b,y\n1,x,\n2,y,1\n3,z,0\n"}, TABULAR_RUN,
     ["column 'y'", "1 missing cell(s) (first at line 2)", "remove those rows"]),
    ("tabular-file-that-is-no-table", {"t.csv": bytes(range(256)) * 8}, TABULAR_RUN, ["t.csv", "cannot read it"]),
    ("tabular-one-row-per-class", {"t.csv": "a,c,y\n1,x,p\n2,y,q\n3,z,r\n4,w,s\n"}, TABULAR_RUN,
     ["4 class(es) have a single row", "at least twice"]),
    ("tabular-type-of-a-column-that-is-not-there", {"t.csv": MIXED_TABLE}, [*TABULAR_RUN, "--set",
     "data.column_types.town=category"], ["data.column_types: 'town' is not a column", "columns: n, city"]),
    ("tabular-unknown-column-type", {"t.csv": MIXED_TABLE}, [*TABULAR_RUN, "--set", "data.column_types.city=colour"],
     ["data.column_types.city = 'colour' is not allowed", "'category'"]),
    ("tabular-every-column-dropped", {"t.csv": MIXED_TABLE}, [*TABULAR_RUN, "--set", "data.column_types.n=drop",
     "--set", "data.column_types.city=drop"], ["no usable feature column is left"]),
    ("doctor-of-a-folder-that-is-no-run", {"notes.txt": "hello"}, ["doctor", "{tmp}"],
     ["is not a honed run: recipe.yaml is missing"]),
    ("doctor-with-a-damaged-failure-record", {"recipe.yaml": "name: x\n", "failure.json": "[1, 2"}, ["doctor", "{tmp}"],
     ["failure.json: damaged (not JSON)"]),
    ("doctor-fix-of-a-negative-count", {"recipe.yaml": "name: x\n"}, ["doctor", "{tmp}", "--fix", "-1"],
     ["--fix -1: give how many findings to try, at least 1"]),
    ("report-of-a-folder-that-is-no-run", {"notes.txt": "hello"}, ["report", "{tmp}"],
     ["is not a honed run: recipe.yaml is missing"]),
    ("report-with-a-damaged-summary", {"recipe.yaml": "name: x\n", "summary.json": "{oops"}, ["report", "{tmp}"],
     ["summary.json: damaged (not JSON)"]),
    ("lora-target-typo", {"t.csv": TINY_TEXT}, ["train", *MINILM_RUN, "--set",
     "model.adapter.targets=[querry]"], ["'querry' names no linear layer", "dense, key, query, value"]),
    ("freeze-more-layers-than-exist", {"t.csv": TINY_TEXT}, ["train", *MINILM_RUN, "--set",
     "model.freeze=7"], ["model.freeze = 7: the encoder has 6 layers"]),
    ("privacy-with-a-vocabulary", {"t.csv": TINY_TEXT}, ["train", "text_classification", "--set",
     "data.train={tmp}/t.csv", "--set", "train.privacy.epsilon=3"], ["data.vocabulary = train under train.privacy",
                                                                      "data.vocabulary=hashed"]),
    ("privacy-without-a-budget", {}, ["train", "linear_regression", "--set", "train.privacy.max_grad_norm=2"],
     ["give exactly one of epsilon"]),
    ("adapter-on-a-bag", {}, ["train", "text_classification", "--set", "model.adapter.r=8"],
     ["model.adapter works with model.name = transformer or causal_lm only"]),
    ("target-giant-cell", {"t.csv": "text,label\n" + "a b,pos\nc d,neg\n" * 30 + "e f," + "9" * 2_000_000 + "\n"},
     ["train", "text_classification", "--set", "data.train={tmp}/t.csv"],
     ["a label of 2,000,000 chars", "at most 1,000 chars"]),
    ("data-test-on-generated-data", {}, ["train", "linear_regression", "--set", "data.test={tmp}/nope.csv"],
     ["data.test is not used by data.source = 'synthetic_regression'"]),
    ("data-test-on-sklearn", {}, ["train", "digits_cnn", "--set", "data.test=x.csv"],
     ["data.test is not used by data.source = 'sklearn'"]),
    ("imdb-review-over-4-mib", {"a.tar.gz": tarred("aclImdb/train/pos/0_9.txt", b"a" * (4 * 2**20 + 1))},
     ["train", "imdb_fast", "--set", "data.path={tmp}/a.tar.gz"],
     ["0_9.txt holds 4,194,305 bytes", "at most 4,194,304"]),
    ("imdb-archive-is-text", {"a.tar.gz": "just a review"},
     ["train", "imdb_fast", "--set", "data.path={tmp}/a.tar.gz"], ["not a readable IMDB archive"]),
    ("efficientnet-freeze-by-name", {}, ["train", "image_pretrained", "--set", "model.freeze=encoder"],
     ["model.freeze = 'encoder'", "efficientnet freezes a number N"]),
    ("recipe-not-utf8", {"r.yaml": b"name: \xff\xfe\n"}, ["train", "{tmp}/r.yaml"], ["not UTF-8"]),
    ("recipe-empty", {"r.yaml": ""}, ["train", "{tmp}/r.yaml"], ["is empty"]),
    ("recipe-duplicate-key", {"r.yaml": "train:\n  epochs: 2\ntrain:\n  epochs: 3\n"}, ["train", "{tmp}/r.yaml"],
     ["'train' appears twice"]),
    ("recipe-alias-bomb", {"r.yaml": BOMB}, ["train", "{tmp}/r.yaml"], ["aliases", "not allowed"]),
    ("truncated-gz", {"t.csv.gz": gzip.compress(TINY_TEXT.encode())[:60]}, ["train", "text_classification", "--set",
     "data.train={tmp}/t.csv.gz"], ["data.train", "cannot read it"]),
    ("out-is-a-file", {"t.csv": TINY_TEXT, "taken": "x"}, ["train", "linear_regression", "--out", "{tmp}/taken"],
     ["a file is there"]),
    ("out-under-a-file", {"taken": "x"}, ["train", "linear_regression", "--set", "train.epochs=1", "--out",
     "{tmp}/taken/run"], ["cannot create"]),
    ("huge-n", {}, ["train", "linear_regression", "--set", "data.n=1e14"], ["data.n", "less than or equal"]),
    ("negative-hidden", {}, ["train", "diabetes_mlp", "--set", "model.hidden=[-5]"], ["model.hidden.0"]),
    ("epochs-1e23", {}, ["train", "linear_regression", "--set", "train.epochs=1e23"], ["train.epochs"]),
    ("nproc-0", {}, ["train", "linear_regression", "--nproc", "0"], ["--nproc 0"]),
    ("port-99999", {}, ["serve", "{tmp}", "--port", "99999"], ["--port 99999"]),
    ("monitor-typo", {}, ["train", "linear_regression", "--set", "train.early_stopping.monitor=val_los"],
     ["val_los", "did you mean 'val_loss'"]),
    ("target-metric-typo", {}, ["train", "linear_regression", "--set", "train.target.metric=rmsee", "--set",
     "train.target.value=1"], ["rmsee", "did you mean 'val_rmse'"]),
    ("only-the-target-column", {"t.csv": "y\n" + "1.5\n" * 30}, ["train", "linear_regression", "--set",
     "data.path={tmp}/t.csv", "--set", "data.target=y"], ["only the target column"]),
    ("all-empty-texts", {"t.csv": "text,label\n" + ',pos\n,neg\n' * 10}, ["train", "text_classification", "--set",
     "data.train={tmp}/t.csv"], ["every text", "is empty"]),
    ("inf-feature", {"t.csv": TINY_TABLE.replace("3,3,1.5", "inf,3,1.5")}, ["train", "linear_regression", "--set",
     "data.path={tmp}/t.csv", "--set", "data.target=y"], ["column 'a'", "line 5", "finite"]),
    ("float32-overflow-target", {"t.csv": TINY_TABLE.replace("3,3,1.5", "3,3,1e300")}, ["train",
     "linear_regression", "--set", "data.path={tmp}/t.csv", "--set", "data.target=y"], ["column 'y'", "finite"]),
    ("one-bad-cell-in-a-numeric-target", {"t.csv": "a,y\n" + "".join(f"{i},{i * 1.37}\n" for i in range(60)) +
     "61,oops\n"}, ["train", "linear_regression", "--set", "data.path={tmp}/t.csv", "--set", "data.target=y"],
     ["numeric but for 1 cell", "line 62", "'oops'"]),
    ("output-unwritable", {"in.txt": "good\n", "ro": ""}, ["lr-find", "linear_regression", "--steps", "10",
     "--seeds", "1", "--out", "{tmp}/ro/x"], ["cannot"]),
    ("distill-temperature-nan", {}, ["distill", "{tmp}", "linear_regression", "--temperature", "nan"],
     ["--temperature nan", "above 0"]),
    ("lbfgs-on-workers", {"t.csv": TINY_TEXT}, ["train", "text_classification", "--set", "data.train={tmp}/t.csv",
     "--nproc", "2"], ["lbfgs runs in one process"]),
    ("es-without-validation", {}, ["train", "linear_regression", "--set", "data.val_fraction=0", "--set",
     "train.early_stopping.patience=1"], ["data.val_fraction = 0"]),
    ("explain-a-missing-run", {}, ["explain", "{tmp}/nothing", "--text", "hello"], ["run directory not found"]),
    ("explain-without-inputs", {}, ["explain", "{tmp}/nothing"], ["--text", "--input", "--global"]),
    ("cv-one-fold", {}, ["cv", "linear_regression", "--folds", "1"], ["at least 2 folds"]),
    ("cv-a-million-folds", {}, ["cv", "linear_regression", "--folds", "1000000"], ["2 to 100 folds"]),
    ("lr-find-a-billion-steps", {}, ["lr-find", "linear_regression", "--steps", "1000000000"], ["10 to 100,000 steps"]),
    ("lr-find-infinite-rate", {}, ["lr-find", "linear_regression", "--max-lr", "inf"], ["both finite"]),
    ("explain-a-billion-steps", {}, ["explain", "{tmp}/nothing", "--text", "good", "--steps", "1000000000"],
     ["2 to 10,000 steps"]),
    ("nproc-a-million", {}, ["train", "linear_regression", "--nproc", "1000000"], ["1 to 1,024 workers"]),
    ("seeds-repeated", {}, ["train", "linear_regression", "--seeds", "3,3"], ["--seeds", "two or more different"]),
    ("jsonl-text-cell-that-is-a-list", {"t.jsonl": '{"text": ["a", "b"], "label": "x"}\n{"text": "c", "label": "y"}\n'},
     ["train", "text_classification", "--set", "data.train={tmp}/t.jsonl"], ["column 'text' holds a list in row 1"]),
    ("jsonl-table-cell-that-is-an-object", {"t.jsonl": "".join(f'{{"a": {{"k": {i}}}, "y": {i}}}\n' for i in range(9))},
     ["train", "tabular", "--set", "data.path={tmp}/t.jsonl", "--set", "data.target=y"],
     ["column 'a' holds an object in row 1", "one value per cell"]),
    ("loss-that-does-not-fit-the-task", {}, ["train", "linear_regression", "--set", "loss.name=bce", "--out",
     "{tmp}/run"], ["loss.name = 'bce' does not fit a regression task"]),
    # sizes from outside, bounded before they are allocated
    ("model-too-large", {}, ["train", "linear_regression", "--set", "model.name=mlp", "--set",
     "model.hidden=[100000,100000]"], ["10,000,", "weights", "HONED_MAX_PARAMETERS"]),
    ("embedding-too-large", {"t.csv": TINY_TEXT}, ["train", "text_classification", "--set", "data.train={tmp}/t.csv",
     "--set", "model.name=bag", "--set", "model.embedding_dim=100000", "--set", "data.vocabulary=hashed", "--quiet"],
     ["weights", "HONED_MAX_PARAMETERS"]),
    ("gz-that-expands-without-end", {"t.csv.gz": GZ_BOMB}, ["train", "linear_regression", "--set",
     "data.path={tmp}/t.csv.gz", "--set", "data.target=y"], ["t.csv.gz", "expands past", "HONED_MAX_DECOMPRESSED_BYTES"]),
    ("text-gz-that-expands-without-end", {"t.csv.gz": GZ_TEXT_BOMB}, ["train", "text_classification", "--set",
     "data.train={tmp}/t.csv.gz"], ["t.csv.gz", "expands past"]),
    ("zip-that-expands-without-end", {"t.csv.zip": ZIP_BOMB}, ["train", "linear_regression", "--set",
     "data.path={tmp}/t.csv.zip", "--set", "data.target=y"], ["t.csv.zip", "expands past"]),
    ("zip-of-two-tables", {"t.csv.zip": zipped("a.csv", b"a,y\n1,2\n")[:-22] + b"x"}, ["train", "linear_regression",
     "--set", "data.path={tmp}/t.csv.zip", "--set", "data.target=y"], ["t.csv.zip", "cannot read it"]),
    ("jsonl-nested-too-deeply", {"t.jsonl": '{"text": "good", "label": "pos"}\n' + "[" * 100_000 + "\n"},
     ["train", "text_classification", "--set", "data.train={tmp}/t.jsonl"], ["t.jsonl", "nested too deeply"]),
    ("table-jsonl-nested-too-deeply", {"t.jsonl": '{"a": 1, "y": 2}\n' + "[" * 100_000 + "\n"},
     ["train", "tabular", "--set", "data.path={tmp}/t.jsonl", "--set", "data.target=y"], ["t.jsonl", "cannot read"]),
]


def run(args: list[str], tmp: Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    args = [a.replace("{tmp}", str(tmp)) for a in args]
    return subprocess.run([sys.executable, "-m", "honed", *args], capture_output=True, text=True, cwd=tmp,
                          timeout=timeout, **kw)


def lay_down(files: dict, tmp: Path) -> None:
    for name, content in files.items():
        path = tmp / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)


@pytest.mark.parametrize("files, args, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_hostile_input_gets_one_line_and_exit_2(tmp_path, files, args, words):
    lay_down(files, tmp_path)
    done = run(args, tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and len(lines) == 1 and len(lines[0]) < 400, done.stderr[-2000:]
    for word in words:
        assert word in lines[0], lines[0]
    assert not (tmp_path / "run").exists()  # a refused run leaves no folder that would block its --out


def test_an_unfinished_run_in_out_is_refused_unless_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "recipe.yaml").write_text("name: old\n")
    args = ["train", "linear_regression", "--set", "train.epochs=2", "--quiet", "--out", "{tmp}/run"]
    refused = run(args, tmp_path)
    assert refused.returncode == 2 and "--resume" in refused.stderr and "--overwrite" in refused.stderr
    done = run(args + ["--overwrite"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "name: linear_regression" in (tmp_path / "run" / "recipe.yaml").read_text()


def test_one_line_in_one_prediction_out_and_the_input_is_kept(tmp_path, text_run):
    texts = tmp_path / "in.txt"
    texts.write_text("good fine\n\nbad \u2028 awful\x0cpoor\n   \nlast")
    done = run(["predict", str(text_run), "--input", str(texts)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1 + 5  # header + one row per line, blank ones included
    before = texts.read_bytes()
    same = run(["predict", str(text_run), "--input", str(texts), "--output", str(texts)], tmp_path)
    assert same.returncode == 2 and "that is the --input file" in same.stderr and texts.read_bytes() == before


def too_wide(path: Path) -> bytes:
    """model.json asking for a model of 60,000,000 inputs: parses, and does not fit the weights."""
    info = json.loads(path.read_text())
    info["shape"]["input_dim"] = 60_000_000
    return json.dumps(info).encode()


DAMAGE = {"truncated": lambda path: path.read_bytes()[:40], "nested": lambda path: b"[" * 100_000 + b"]" * 100_000,
          "too-wide": too_wide, "not-a-list": lambda path: b'{"good": 1}',
          "more-words-than-weights": lambda path: json.dumps(json.loads(path.read_text()) +
                                                             [f"w{i}" for i in range(100_000)]).encode()}


@pytest.mark.parametrize("damage, how", [("model.safetensors", "truncated"), ("model.json", "truncated"),
                                         ("preprocess.json", "truncated"), ("vocab.json", "truncated"),
                                         ("model.json", "nested"), ("preprocess.json", "nested"),
                                         ("model.json", "too-wide"), ("vocab.json", "not-a-list"),
                                         ("vocab.json", "more-words-than-weights")])
def test_a_damaged_run_file_is_one_line_in_every_command(tmp_path, text_run, damage, how):
    import shutil

    broken = Path(shutil.copytree(text_run, tmp_path / "broken"))
    (broken / damage).write_bytes(DAMAGE[how](broken / damage))
    for args in (["evaluate", str(broken)], ["predict", str(broken), "--input", str(broken / "model.json")]):
        done = run(args, tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-1500:]
        assert damage in done.stderr or "damaged" in done.stderr, done.stderr


def test_a_port_in_use_is_one_line_before_the_model_loads(tmp_path, text_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = run(["serve", str(text_run), "--port", str(port)], tmp_path, timeout=60)
    assert done.returncode == 2 and "cannot listen there" in done.stderr and len(done.stderr.splitlines()) == 1


def test_concurrent_cache_stores_of_one_key_all_succeed(tmp_path):
    """Many processes storing the same preprocessing-cache entry at once: none fails, one whole entry stays."""
    code = ("import sys; from honed.data import build_data, cache; from honed.recipe import load_recipe\n"
            "spec = load_recipe({'data': {'source': 'text_files', 'train': sys.argv[1]}}).data\n"
            "b = build_data(spec)\n"
            "for _ in range(15): cache.store(spec, b)\n")
    (tmp_path / "t.csv").write_text(TINY_TEXT)
    env = {**os.environ, "HONED_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "t.csv")], env=env, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    root = tmp_path / "cache" / "preprocessed"
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []
    assert len([p for p in root.iterdir()]) == 1 and (next(root.iterdir()) / "meta.json").is_file()


def children_of(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list processes")
@pytest.mark.parametrize("delay", [1.5, 3.0, 5.0])
def test_a_killed_run_leaves_no_process_behind(tmp_path, delay):
    """SIGKILL at several points of a run whose tokenization uses the worker pool: every child dies too."""
    big = "text,label\n" + "".join(f"word{i % 97} other{i % 13} more text here {i},{'ab'[i % 2]}\n"
                                   for i in range(30_000))
    (tmp_path / "t.csv").write_text(big)
    env = {**os.environ, "HONED_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "honed", "train", "text_classification", "--set",
                             f"data.train={tmp_path / 't.csv'}", "--quiet", "--out", str(tmp_path / "run")],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    children = children_of(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
        time.sleep(0.1)
    alive = [c for c in children if Path(f"/proc/{c}").exists()
             and "State:\tZ" not in Path(f"/proc/{c}/status").read_text()]
    assert alive == []


def descendants_of(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def running(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if "State:\tZ" not in Path(f"/proc/{pid}/status").read_text():
                alive.append(pid)
        except OSError:
            pass
    return alive


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list processes")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_one_signal_to_the_launcher_stops_torchrun_and_every_worker(tmp_path, signum):
    """`honed train --nproc 2` stopped the way a scheduler stops a job, at a random moment once the workers
    run: no process it started is left, and a SIGTERMed run is not finished behind the user's back."""
    import random

    proc = subprocess.Popen([sys.executable, "-m", "honed", "train", "linear_regression", "--nproc", "2", "--set",
                             "train.device=cpu", "--set", "optimizer.name=sgd", "--set", "train.epochs=100000",
                             "--set", "train.convergence_tol=null", "--set", "data.n=4000", "--quiet", "--out",
                             str(tmp_path / "run")], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while time.time() < deadline and len(descendants_of(proc.pid)) < 3:  # torchrun and its two workers
        time.sleep(0.2)
    time.sleep(random.uniform(0.5, 3.0))
    started = descendants_of(proc.pid)
    assert len(started) >= 3, started
    proc.send_signal(signum)
    proc.wait(timeout=60)
    deadline = time.time() + 30
    while time.time() < deadline and running(started):
        time.sleep(0.2)
    assert running(started) == []
    assert not (tmp_path / "run" / "summary.json").exists()
    if signum == signal.SIGTERM:
        assert proc.returncode == 130 and "interrupted" in proc.stderr.read()


STUCK_IN_A_COLLECTIVE = """
import signal, socket, sys
import torch.distributed as dist
from honed.processes import end_if_stuck_after_signal
def stop(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGTERM, stop)
end_if_stuck_after_signal(grace=1.0)
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
store = dist.TCPStore("127.0.0.1", port, 2, is_master=True, wait_for_workers=False)
print("waiting", flush=True)
store.get("a key the peer that is gone would have set")  # blocks in C++: Python's handler cannot run
"""


def test_a_worker_waiting_in_cpp_for_a_gone_peer_still_ends_on_sigterm():
    """The main thread blocked in the store (as `init_process_group` or a collective is, for a peer that died)
    never runs Python's SIGTERM handler; the watch ends the process within its grace, exit code 130."""
    proc = subprocess.Popen([sys.executable, "-c", STUCK_IN_A_COLLECTIVE],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "waiting\n"
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=8)  # without the watch: the store's 5-minute timeout
        assert proc.returncode == 130 and "interrupted" in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_sigterm_leaves_no_temp_files_and_run_files_follow_the_umask(tmp_path):
    done = run(["train", "linear_regression", "--set", "train.epochs=3", "--quiet", "--out", "{tmp}/run"], tmp_path)
    assert done.returncode == 0, done.stderr
    mode = (tmp_path / "run" / "summary.json").stat().st_mode & 0o777
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask
    # 200 epochs without early stopping: still training when the signal comes, however fast the machine
    proc = subprocess.Popen([sys.executable, "-m", "honed", "train", "digits_cnn", "--set", "train.epochs=200",
                             "--set", "train.early_stopping=null", "--set", "train.checkpoint.every_steps=1",
                             "--quiet", "--out", str(tmp_path / "term")],
                            cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    time.sleep(12)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err
    leftovers = [p.name for p in (tmp_path / "term").rglob(".*") if p.is_file()]
    assert leftovers == []


JUNK = [-1, 0, 1e30, -1e30, "nan", float("inf"), "", "x" * 50, [1, "a"], {"a": 1}, True, None, [[[]]], "1e999",
        [-3, 2], "../../etc", 3.5]


def test_every_recipe_key_with_every_kind_of_wrong_value_is_a_user_error_or_valid():
    """The schema alone, key by key: a wrong type, range or shape is a UserError, never another exception."""
    from honed.errors import UserError
    from honed.recipe import load_recipe
    from honed.recipe.reference import sections

    checked = 0
    for key, *_ in sections():
        if key.startswith("search"):
            continue
        for value in JUNK:
            raw: dict = {}
            node = raw
            *parents, last = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
            try:
                load_recipe(raw)
            except UserError as e:
                assert "\n" not in str(e) and len(str(e)) < 600, (key, value, str(e))
            checked += 1
    assert checked > 1000


def test_fuzzed_recipes_exit_0_or_2_without_a_traceback(tmp_path):
    """Random wrong values for every key of the schema, and random bytes as the recipe: a user error each time."""
    import random

    from honed.recipe.reference import sections

    rng = random.Random(0)
    keys = [k for k, *_ in sections() if not k.startswith("search")]
    junk = [-1, 0, 1e30, -1e30, "nan", "", "x" * 50, [1, "a"], {"a": 1}, True, None, [[[]]], "1e999"]
    for i in range(12):
        raw: dict = {}
        for key in rng.sample(keys, 3):
            node = raw
            *parents, last = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = rng.choice(junk)
        (tmp_path / f"r{i}.yaml").write_text(yaml.safe_dump(raw))
    for i in range(4):
        (tmp_path / f"b{i}.yaml").write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
    from honed.cli import main

    for path in sorted(tmp_path.glob("*.yaml")):  # in this process: any exception but a user error escapes main
        began = time.perf_counter()
        code = main(["train", str(path), "--set", "train.epochs=1", "--quiet", "--out", str(tmp_path / path.stem)])
        assert code in (0, 2) and time.perf_counter() - began < 60, path.read_bytes()[:300]


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="needs /dev/full")
def test_a_full_disk_a_link_and_an_unwritable_cache(tmp_path, text_run):
    """Writing where the disk is full is one line (and the device is left a device); a link given as --output is
    written through, not replaced; a preprocessing cache that cannot be written costs a warning, not the run."""
    texts = tmp_path / "in.txt"
    texts.write_text("good fine\nbad awful\n")
    full = run(["predict", str(text_run), "--input", str(texts), "--output", "/dev/full"], tmp_path)
    assert full.returncode == 2 and "No space left on device" in full.stderr and len(full.stderr.splitlines()) == 1
    assert Path("/dev/full").is_char_device()
    (tmp_path / "kept.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "kept.csv")
    linked = run(["predict", str(text_run), "--input", str(texts), "--output", str(tmp_path / "link.csv")], tmp_path)
    assert linked.returncode == 0 and (tmp_path / "link.csv").is_symlink()
    assert len((tmp_path / "kept.csv").read_text().splitlines()) == 3  # header + 2 predictions, through the link
    (tmp_path / "t.csv").write_text(TINY_TEXT)
    (tmp_path / "afile").write_text("")
    cached = run(["train", "text_classification", "--set", "data.train={tmp}/t.csv", "--set", "train.epochs=1",
                  "--out", "{tmp}/r", "--quiet"], tmp_path, env={**os.environ, "HONED_CACHE": str(tmp_path / "afile/c")})
    assert cached.returncode == 0, cached.stderr[-1500:]
    assert "could not cache the preprocessed data" in cached.stderr and (tmp_path / "r" / "summary.json").is_file()


@pytest.mark.parametrize("command", [["report"], ["doctor"], ["evaluate"], ["export"]])
def test_a_link_out_of_a_run_folder_is_refused_by_every_command(tmp_path, text_run, command):
    """A run folder whose curves.png is a link to a file elsewhere: refused in one line, never read or embedded."""
    import shutil

    run_dir = Path(shutil.copytree(text_run, tmp_path / "linked"))
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    (run_dir / "curves.png").unlink(missing_ok=True)
    (run_dir / "curves.png").symlink_to(secret)
    done = run([*command, str(run_dir)], tmp_path)
    assert done.returncode == 2 and "outside the run folder" in done.stderr and "curves.png" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "hunter2" not in done.stdout + done.stderr
    assert not (run_dir / "report.html").exists() or "aHVudGVyMj" not in (run_dir / "report.html").read_text()


def test_a_parquet_column_of_lists_and_a_parquet_claiming_too_many_rows_are_one_line(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.DataFrame({"text": [["a", "b"], ["c"]] * 10, "label": ["x", "y"] * 10}).to_parquet(tmp_path / "t.parquet")
    done = run(["train", "text_classification", "--set", "data.train={tmp}/t.parquet"], tmp_path)
    assert done.returncode == 2 and "column 'text' holds a list in row 1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    import pyarrow as pa
    import pyarrow.parquet as pq

    block = pa.table({"a": pa.array([0.0] * 1_000_000), "y": pa.array([1.0] * 1_000_000)})
    with pq.ParquetWriter(tmp_path / "claims.parquet", block.schema, compression="zstd") as writer:
        for _ in range(40):  # 40 million rows in a few hundred KB: refused from the footer, before any is read
            writer.write_table(block)
    claimed = run(["train", "linear_regression", "--set", "data.path={tmp}/claims.parquet", "--set", "data.target=y"],
                  tmp_path)
    assert claimed.returncode == 2 and "claims 40,000,000 rows" in claimed.stderr


def test_two_writers_on_one_folder_are_refused(tmp_path):
    """A second `train --resume` of a run another process is still training, a second compare into one --out, and
    a compare into a killed compare's --out (stale runs) without --overwrite: each refused in one line."""
    run_dir = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "honed", "train", "linear_regression", "--set", "optimizer.name=sgd",
                              "--set", "train.epochs=100000", "--set", "train.convergence_tol=null", "--quiet",
                              "--out", str(run_dir)], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (run_dir / "model.json").exists():
            time.sleep(0.2)
        second = run(["train", "--resume", str(run_dir)], tmp_path)
        assert second.returncode == 2 and "another honed process" in second.stderr and f"pid {first.pid}" in second.stderr
        again = run(["train", "linear_regression", "--out", str(run_dir), "--overwrite"], tmp_path)
        assert again.returncode == 2 and "another honed process" in again.stderr
    finally:
        first.kill()
        first.wait()
    args = ["compare", "linear_regression", "--vary", "optimizer.lr=0.01,0.02", "--set", "train.epochs=2",
            "--out", str(tmp_path / "cmp")]
    (tmp_path / "cmp" / "runs" / "optimizer.lr=0.01").mkdir(parents=True)  # what a killed compare leaves
    (tmp_path / "cmp" / "runs" / "optimizer.lr=0.01" / "recipe.yaml").write_text("name: x\n")
    stale = run(args, tmp_path)
    assert stale.returncode == 2 and "an earlier compare is there" in stale.stderr and "--overwrite" in stale.stderr
    assert run([*args, "--overwrite"], tmp_path).returncode == 0


def test_randomly_damaged_run_files_are_user_errors_in_every_command(tmp_path, text_run):
    """Random damage of random kinds and sizes to a random run file, then a random command that loads the run:
    each answers a UserError (one line on the command line), never another exception; seeded, so a failure
    repeats. Every command meets every kind over the cases."""
    import random
    import shutil

    import honed
    from honed.export import load_predictor

    rng = random.Random(20261206)
    (tmp_path / "in.txt").write_text("good fine\nbad awful\n")
    commands = {
        "evaluate": lambda run: honed.evaluate(run),
        "predict": lambda run: honed.predict(run, tmp_path / "in.txt"),
        "export": lambda run: honed.export_onnx(run, out=tmp_path / f"onnx-{rng.random()}"),
        "serve": lambda run: load_predictor(run),
        "doctor": lambda run: honed.doctor(run, probes=False),
        "report": lambda run: honed.build_report(run),
    }
    names = ["model.json", "preprocess.json", "vocab.json", "model.safetensors"]
    kinds = {
        "nested": lambda data: (b"[" * rng.randint(1_000, 300_000)),
        "cut": lambda data: data[: rng.randint(0, len(data) - 1)],
        "bytes": lambda data: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096))),
        "wide": lambda data: data.replace(b'"input_dim": ', b'"input_dim": 9' + str(rng.randint(0, 10**9)).encode(), 1),
    }
    for case, (command, kind) in enumerate([(c, k) for c in sorted(commands) for k in sorted(kinds)]):
        name = rng.choice(names if kind != "wide" else ["model.json"])
        broken = Path(shutil.copytree(text_run, tmp_path / f"case{case}"))
        original = (broken / name).read_bytes()
        damaged = kinds[kind](original)
        if damaged == original:
            continue
        (broken / name).write_bytes(damaged)
        try:
            commands[command](broken)
        except honed.UserError:
            pass  # the one line the command prints
        except Exception as e:  # noqa: BLE001 - anything else is what this test is for
            pytest.fail(f"{command} with {name} damaged ({kind}): {type(e).__name__}: {e}")


SLOW_CHUNKS = """
import sys, time
import honed.cli
from honed.data import parallel

def slow(chunk):
    time.sleep(30)
    return chunk

def commands():  # `honed train` whose work is chunks in the worker pool (as tokenizing and decoding are)
    parser, named = made()
    named["train"] = lambda args: parallel.map_chunks(slow, list(range(8)), min_items=2) and 0
    return parser, named

made, honed.cli._parser_and_commands = honed.cli._parser_and_commands, commands
sys.argv = ["honed", "train", "anything"]
honed.cli.console()
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_to_the_process_group_while_workers_run_is_one_line(tmp_path, signum):
    """Ctrl-C reaches every process of the group, the pool's workers too: the run says it was interrupted, once,
    with no worker's traceback, and no worker is left."""
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CHUNKS], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    time.sleep(6)  # the pool is up and its workers are sleeping in `slow`
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err, err
    assert workers and not any(Path(f"/proc/{w}").exists() for w in workers)
