"""Load test of `honed serve` on loopback: requests/s and p50/p99 latency, bounded and self-stopping.

Three servers answer the same single-review requests with the same trained model:
  - baseline: a minimal FastAPI endpoint calling the PyTorch model once per request (no batching);
  - honed serve --backend torch and --backend onnx (server-side micro-batching, model off the event loop).
Each gets a fixed number of requests at a fixed concurrency, then stops.

    python benchmarks/serve_load.py [--run RUN_DIR | --data ARCHIVE] [--requests 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SHARED_IMDB, table

BASELINE = '''
import sys, torch, uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from honed.export import load_predictor
predictor = load_predictor(sys.argv[1], "torch")
app = FastAPI()
class Body(BaseModel):
    texts: list[str]
@app.post("/predict")
def predict(body: Body):  # FastAPI runs a plain def in its thread pool: one model call per request
    return {"predictions": predictor.predict(body.texts)}
@app.get("/health")
def health():
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int, proc: subprocess.Popen) -> None:
    import httpx

    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


async def load(port: int, texts: list[str], requests: int, concurrency: int) -> dict:
    import httpx

    latencies: list[float] = []
    queue = list(range(requests))

    async def worker(client) -> None:
        while queue:
            i = queue.pop()
            began = time.perf_counter()
            r = await client.post("/predict", json={"texts": [texts[i % len(texts)]]})
            r.raise_for_status()
            latencies.append(time.perf_counter() - began)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client:
        await client.post("/predict", json={"texts": texts[:1]})  # warm up
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - began
    latencies.sort()
    return {"rps": requests / wall, "p50": 1000 * statistics.median(latencies),
            "p99": 1000 * latencies[int(0.99 * (len(latencies) - 1))]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="a finished text run directory (default: train imdb_seed for 2 epochs)")
    p.add_argument("--data", default=str(SHARED_IMDB))
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            run = f"{tmp}/run"
            subprocess.run([sys.executable, "-m", "honed", "train", "imdb_seed", "--set", f"data.path={args.data}",
                            "--set", "train.epochs=2", "--out", run, "--quiet"], check=True, cwd=ROOT)
        texts = ["A wonderful, moving film with a superb cast and a story that stays with you.",
                 "Dull, predictable and far too long; the acting is wooden throughout.",
                 "Not bad at all, though the ending drags a little."]
        servers = {"baseline: FastAPI, one model call per request": [sys.executable, "-c", BASELINE, run],
                   "honed serve --backend torch": [sys.executable, "-m", "honed", "serve", run, "--backend", "torch"],
                   "honed serve --backend onnx": [sys.executable, "-m", "honed", "serve", run, "--backend", "onnx"]}
        rows, base = [], None
        for name, cmd in servers.items():
            port = free_port()
            cmd = cmd + ([str(port)] if "baseline" in name else ["--port", str(port)])
            log = open(f"{tmp}/{port}.log", "w")  # access logs go to a file: an unread pipe would fill and block
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                    env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
            try:
                wait_up(port, proc)
                r = asyncio.run(load(port, texts, args.requests, args.concurrency))
            finally:
                proc.terminate()
                proc.wait(timeout=20)
                log.close()
            base = base or r["rps"]
            rows.append([name, f"{r['rps']:,.0f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}", f"{r['rps'] / base:.2f}"])
            print(" | ".join(rows[-1]), flush=True)
    print()
    print(f"{args.requests} requests of one review each, {args.concurrency} at a time, loopback, this machine:")
    print(table(["server", "requests/s", "p50 ms", "p99 ms", "vs baseline"], rows))


if __name__ == "__main__":
    main()
