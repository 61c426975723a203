"""The HTTP service: every endpoint, every bad input (4xx, never 500), micro-batching, a real server."""

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from honed.export import load_predictor
from honed.serve import Limits, create_app


@pytest.fixture
def text_client(text_run):
    return TestClient(create_app(load_predictor(text_run), Limits(max_items=8, max_chars=200)))


def test_health_metadata_and_docs(text_client):
    assert text_client.get("/health").json() == {"status": "ok"}
    meta = text_client.get("/metadata").json()
    assert meta["task"] == "multiclass" and sorted(meta["labels"]) == ["food", "politics", "sports"]
    assert meta["input"] == {"texts": "list of strings"} and meta["backend"] == "torch"
    assert "accuracy" in meta["metrics"] and meta["limits"]["max_items"] == 8
    assert text_client.get("/docs").status_code == 200
    assert "/predict" in text_client.get("/openapi.json").json()["paths"]


def test_predict_returns_labels_and_probabilities(text_client, text_run):
    texts = ["match goal team score", "recipe cook taste bake"]
    body = text_client.post("/predict", json={"texts": texts}).json()
    assert [p["prediction"] for p in body["predictions"]] == [p["prediction"] for p in
                                                               load_predictor(text_run).predict(texts)]
    for p in body["predictions"]:
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("payload, status, words", [
    ({"texts": []}, 422, "empty batch"),
    ({"texts": ["a"] * 9}, 413, "limit is 8"),
    ({"texts": ["x" * 201]}, 413, "texts[0] has 201 characters"),
    ({"texts": [1, {"a": 2}]}, 422, "texts.0"),
    ({}, 422, "text model"),
    ({"rows": [[1.0]]}, 422, "text model"),
    ({"images": ["aGk="]}, 422, "does not take images"),
    ({"texts": ["a"], "extra": 1}, 422, "extra"),
    ("not json at all", 400, "malformed JSON"),
    ([1, 2, 3], 422, "body"),
])
def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(text_client, payload, status, words):
    if isinstance(payload, str):
        response = text_client.post("/predict", content=payload, headers={"content-type": "application/json"})
    else:
        response = text_client.post("/predict", json=payload)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    assert text_client.post("/predict", json={"texts": ["goal"]}).status_code == 200


def test_feature_rows_by_name_or_position(digits_run):
    client = TestClient(create_app(load_predictor(digits_run)))
    columns = client.get("/metadata").json()["input"]["columns"]
    assert len(columns) == 64
    by_name = client.post("/predict", json={"rows": [{c: 0.5 for c in columns}]}).json()["predictions"]
    by_position = client.post("/predict", json={"rows": [[0.5] * 64]}).json()["predictions"]
    assert by_name == by_position and by_name[0]["prediction"] in [str(i) for i in range(10)]
    for payload, words in (({"rows": [{columns[0]: 1.0}]}, "missing"), ({"rows": [[1.0, 2.0]]}, "has 2 values"),
                           ({"texts": ["a"]}, "feature rows"), ({"rows": [["a"] * 64]}, "rows.0")):
        response = client.post("/predict", json=payload)
        assert response.status_code == 422 and words in response.json()["error"], response.text
    nan = client.post("/predict", content='{"rows": [[NaN' + ", 0" * 63 + "]]}",
                      headers={"content-type": "application/json"})
    assert nan.status_code == 422 and "finite" in nan.json()["error"]


def test_regression_predictions_are_values(regression_run):
    """The served value is the linear model's own: w . standardized(x) + b, in the target's units."""
    import honed

    client = TestClient(create_app(load_predictor(regression_run)))
    rows = [{"x0": 0.0, "x1": 0.0, "x2": 0.0}, {"x0": 1.5, "x1": -2.0, "x2": 0.25}]
    body = client.post("/predict", json={"rows": rows}).json()
    assert isinstance(body["predictions"][0]["prediction"], float)
    _, model, pre = honed.load_run(regression_run)
    w, b = model.linear.weight.detach()[0].double(), float(model.linear.bias.detach())
    for row, served in zip(rows, body["predictions"]):
        x = [(row[c] - m) / s for c, m, s in zip(pre.columns, pre.mean.tolist(), pre.std.tolist())]
        expected = (float(w @ torch.tensor(x, dtype=torch.float64)) + b) * pre.target_std + pre.target_mean
        assert served["prediction"] == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_concurrent_requests_share_model_calls(text_run):
    predictor = load_predictor(text_run)
    app = create_app(predictor, Limits(max_batch=64, max_wait_ms=50))
    texts = [f"goal team {i}" for i in range(20)]

    async def send_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/predict", json={"texts": [t]}) for t in texts))

    responses = asyncio.run(send_all())
    assert all(r.status_code == 200 for r in responses)
    assert app.state.batcher.calls < len(texts)  # requests were batched together
    alone = predictor.predict(texts)
    assert [r.json()["predictions"][0]["prediction"] for r in responses] == [p["prediction"] for p in alone]


def test_honed_serve_answers_on_a_loopback_port(text_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "honed", "serve", str(text_run), "--port", str(port),
                               "--backend", "onnx"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if json.loads(r.read()) == {"status": "ok"}:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not come up")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=b'{"texts": ["vote party"]}',
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert json.loads(r.read())["predictions"][0]["prediction"] in ("food", "politics", "sports")
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_fuzzed_requests_get_2xx_or_a_4xx_error_and_the_server_keeps_serving(text_client):
    """Random JSON values and random bytes to every endpoint and method: never a 500, errors as {"error": ...}."""
    import random

    rng = random.Random(0)
    values = [None, 0, -1, 1e308, "x", "", [], {}, [None], {"texts": None}, {"texts": [None]}, {"texts": "abc"},
              {"texts": [["a"]]}, {"rows": [[1e39]]}, {"texts": ["ok"], "rows": [[1.0]]}, {"texts": ["\u0000" * 10]}]
    for i in range(80):
        path = rng.choice(["/predict", "/health", "/metadata", "/nope", "/predict/"])
        method = rng.choice(["POST", "GET", "PUT", "DELETE"])
        if i % 2:
            content = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        else:
            content = json.dumps(rng.choice(values)).encode()
        response = text_client.request(method, path, content=content, headers={"content-type": "application/json"})
        assert response.status_code < 500, (method, path, content[:100], response.text)
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}, response.text
    assert text_client.get("/health").json() == {"status": "ok"}


def test_a_body_over_the_limit_is_refused_before_it_is_read(text_client):
    limit = 8 * (200 * 6 + 64) + 65536  # Limits(max_items=8, max_chars=200).max_body_bytes
    big = b'{"texts": ["' + b"a" * (limit + 10) + b'"]}'
    response = text_client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "over" in response.json()["error"]


def test_explain_answers_words_and_their_attributions_and_refuses_bad_requests(text_client):
    pytest.importorskip("captum")
    body = text_client.post("/explain", json={"texts": ["the team scored a goal", "vote for the party"]}).json()
    first = body["explanations"][0]
    assert first["names"] == ["the", "team", "scored", "a", "goal"] and len(first["attributions"]) == 5
    assert first["prediction"] == "sports" and first["completeness_gap"] <= 0.05
    too_many = text_client.post("/explain", json={"texts": ["goal"] * 17})
    assert too_many.status_code == 413 and "the limit is" in too_many.json()["error"]
    empty = text_client.post("/explain", json={"texts": ["goal", " "]})
    assert empty.status_code == 422 and "empty" in empty.json()["error"]
    assert text_client.post("/explain", json={"rows": [[1.0]]}).status_code == 422


def raw_request(port: int, data: bytes, wait: float = 0.0, read_for: float = 5.0) -> bytes:
    """Send `data` over one connection (after `wait` seconds), then read until the server closes it or
    `read_for` seconds pass; the bytes it answered ("" if it closed without answering)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_for) as s:
        time.sleep(wait)
        if data:
            s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except socket.timeout:
            chunks.append(b"<still open>")
        return b"".join(chunks)


def test_slow_idle_and_foreign_clients_are_cut_off_and_shutdown_is_bounded(text_run):
    """A real server with short limits: headers that trickle, a body shorter than its Content-Length, a silent
    connection, a Host header naming another site, a wrong token, and SIGTERM while a slow client holds on."""
    import os
    import signal

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "t" * 24
    server = subprocess.Popen([sys.executable, "-m", "honed", "serve", str(text_run), "--port", str(port),
                               "--header-timeout", "1", "--body-timeout", "1", "--idle-timeout", "1",
                               "--shutdown-timeout", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env={**os.environ, "HONED_SERVE_TOKEN": token})
    auth = f"Authorization: Bearer {token}\r\n".encode()
    try:
        for _ in range(150):
            if raw_request(port, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n", read_for=1).startswith(
                    b"HTTP/1.1 200") if _port_open(port) else False:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the server did not come up")
        started = time.perf_counter()
        assert raw_request(port, b"GET /health HTTP/1.1\r\nHo") == b""  # headers never finish: closed
        assert raw_request(port, b"") == b""  # silent: closed
        assert time.perf_counter() - started < 6
        short_body = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
                      b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"texts\"")
        assert raw_request(port, short_body).startswith(b"HTTP/1.1 408")
        assert raw_request(port, b"GET /metadata HTTP/1.1\r\nHost: evil.example\r\n" + auth + b"\r\n").startswith(
            b"HTTP/1.1 400")
        assert raw_request(port, b"GET /metadata HTTP/1.1\r\nHost: localhost:1\r\n\r\n").startswith(b"HTTP/1.1 401")
        assert raw_request(port, b"GET /metadata HTTP/1.1\r\nHost: localhost\r\n" + auth +
                           b"Connection: close\r\n\r\n").startswith(b"HTTP/1.1 200")
        holder = socket.create_connection(("127.0.0.1", port))  # a slow client holding a connection open
        holder.sendall(b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Length: 50\r\n\r\n{")
        stopped = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
        assert time.perf_counter() - stopped < 8
        holder.close()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("option, value", [("--max-items", "0"), ("--max-batch", "-3"), ("--max-wait-ms", "nan"),
                                           ("--header-timeout", "0"), ("--body-timeout", "1e9")])
def test_nonsense_server_options_are_one_line(text_run, option, value):
    done = subprocess.run([sys.executable, "-m", "honed", "serve", str(text_run), "--port", "1", option, value],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and option in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_prometheus_metrics_info_and_a_request_timeout(text_run):
    """GET /metrics counts requests by endpoint and status and the model calls' sizes (Prometheus' text format);
    /info names the outputs; a request slower than request_timeout_s is answered 504, and the server goes on."""
    import re

    predictor = load_predictor(text_run)
    client = TestClient(create_app(predictor, Limits(max_items=8, max_chars=200)))
    for _ in range(2):
        assert client.post("/predict", json={"texts": ["vote party", "goal team"]}).status_code == 200
    assert client.post("/predict", json={"texts": []}).status_code == 422
    text = client.get("/metrics").text

    def value(pattern: str) -> float:
        return float(re.search(pattern + r" ([0-9.e+]+)", text).group(1))

    assert value(r'honed_requests_total\{endpoint="/predict",status="200"\}') == 2
    assert value(r'honed_requests_total\{endpoint="/predict",status="422"\}') == 1
    assert value(r'honed_batch_size_sum') == 4 and value(r'honed_request_seconds_count\{endpoint="/predict"\}') == 3
    info = client.get("/info").json()
    assert info["outputs"]["probabilities"] == [f"prob_{c}" for c in info["labels"]]
    slow = load_predictor(text_run)
    fast_predict = slow.predict
    slow.predict = lambda batch: time.sleep(1.0) or fast_predict(batch)
    timed_out = TestClient(create_app(slow, Limits(request_timeout_s=0.2)))
    answer = timed_out.post("/predict", json={"texts": ["vote party"]})
    assert answer.status_code == 504 and "within 0.2 s" in answer.json()["error"]
    assert timed_out.get("/health").json() == {"status": "ok"}


def test_batch_predict_answers_a_file_sized_list_as_predict_does_with_ids(text_run):
    predictor = load_predictor(text_run)
    client = TestClient(create_app(predictor, Limits(max_items=8, max_chars=200, max_batch=4, max_batch_items=40,
                                                     max_batch_mb=0.002)))
    texts = [f"{w} team score" if i % 2 else f"{w} cook taste" for i, w in enumerate(["a", "b", "c"] * 6)]  # 18
    body = client.post("/batch_predict", json={"texts": texts, "ids": list(range(100, 118))}).json()
    assert body["ids"] == list(range(100, 118))  # in model calls of 4, answered in the order sent
    assert [p["prediction"] for p in body["predictions"]] == [p["prediction"] for p in predictor.predict(texts)]
    assert client.post("/predict", json={"texts": texts}).status_code == 413  # over /predict's 8
    one = client.post("/predict", json={"texts": texts[:2], "ids": ["x", "y"]}).json()
    assert one["ids"] == ["x", "y"] and len(one["predictions"]) == 2
    assert "ids" not in client.post("/batch_predict", json={"texts": texts[:2]}).json()
    short = client.post("/batch_predict", json={"texts": texts, "ids": [1, 2]})
    assert short.status_code == 422 and "ids has 2 entries for 18 items" in short.json()["error"]
    many = client.post("/batch_predict", json={"texts": ["ab"] * 41})
    assert many.status_code == 413 and "limit is 40" in many.json()["error"]
    big = client.post("/batch_predict", json={"texts": ["x" * 150] * 20})  # 3 kB over its 0.002 MB body limit
    assert big.status_code == 413 and client.get("/health").status_code == 200


def test_the_openapi_document_names_this_runs_inputs(text_run, digits_run):
    texts = TestClient(create_app(load_predictor(text_run), Limits(max_items=8, max_chars=200))).get("/openapi.json")
    body = texts.json()["components"]["schemas"]["PredictRequest"]
    assert body["properties"]["texts"]["items"] == {"type": "string", "maxLength": 200}
    assert body["properties"]["texts"]["maxItems"] == 8 and body["required"] == ["texts"]
    answer = texts.json()["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    one = answer["properties"]["predictions"]["items"]["properties"]
    assert sorted(one["prediction"]["enum"]) == ["food", "politics", "sports"]
    assert sorted(one["probabilities"]["required"]) == ["food", "politics", "sports"]
    client = TestClient(create_app(load_predictor(digits_run)))
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    named = schemas["PredictRequest"]["properties"]["rows"]["items"]["anyOf"][0]
    assert named["required"] == client.get("/metadata").json()["input"]["columns"]
    assert "ids" in schemas["BatchRequest"]["properties"] and "ids" in schemas["PredictRequest"]["properties"]


def test_a_tables_request_schema_types_each_column_and_says_when_a_time_of_day_counts():
    from types import SimpleNamespace

    import pandas as pd

    from honed.data.columns import ColumnEncoder
    from honed.serve.schema import row_schema

    frame = pd.DataFrame({"city": ["paris", "lima"] * 5, "income": range(10), "day": ["2024-01-02", "2024-03-05"] * 5,
                          "stop": ["2017-01-01T06:00:42Z", "2017-01-02T18:30:00Z"] * 5})
    encoder = ColumnEncoder().fit(frame)
    schema = row_schema(SimpleNamespace(pre=SimpleNamespace(column_encoder=encoder)), list(frame))
    cells = schema["properties"]
    assert schema["required"] == ["city", "income", "day", "stop"]
    assert cells["income"]["type"] == ["number", "null"] and "paris" in cells["city"]["description"]
    assert cells["day"]["format"] == "date" and cells["stop"]["format"] == "date-time"  # the hour is an input
    assert "UTC" in cells["stop"]["description"]
