"""The HTTP API of a served run.

    POST /explain   the same body (at most 16 items) -> per item: words (or columns), their attributions,
                    the prediction and the completeness gap (honed explain; --backend torch)
    POST /predict   {"texts": [...]} for text models, {"rows": [{column: value}, ...]} (or lists of
                    numbers in column order) for tabular/image models -> {"predictions": [...]}
    GET  /health    {"status": "ok"}
    GET  /metadata  model, task, labels, expected input, test metrics, limits, version
    GET  /docs      OpenAPI documentation

Every bad request gets a 4xx with a one-line "error" (never a 500), and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
from dataclasses import asdict, dataclass
from typing import Optional, Union

import numpy as np

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from honed.serve.batcher import MicroBatcher

FLOAT32_MAX = 3.4028234663852886e38


@dataclass
class Limits:
    max_items: int = 256  # texts or rows per request
    max_chars: int = 100_000  # characters per text
    max_batch: int = 64  # items per model call (micro-batching)
    max_wait_ms: float = 5.0  # how long a request waits for others to share its model call
    header_timeout_s: float = 10.0  # from a connection's opening (or its last response) to a request's whole headers
    body_timeout_s: float = 30.0  # between two parts of a request's body (a Content-Length larger than the body)
    idle_timeout_s: float = 5.0  # a kept-alive connection with no new request
    shutdown_timeout_s: float = 10.0  # on SIGTERM/Ctrl-C: requests in flight get this long, then the server exits
    request_timeout_s: float = 60.0  # a request not answered within this gets a 504
    max_batch_items: int = 10_000  # items in one /batch_predict request (a file's worth)
    max_batch_mb: float = 64.0  # the body of one /batch_predict request

    RANGES = {"max_items": (1, 100_000), "max_chars": (1, 10_000_000), "max_batch": (1, 4096),
              "max_wait_ms": (0.0, 1000.0), "header_timeout_s": (0.1, 3600.0), "body_timeout_s": (0.1, 3600.0),
              "idle_timeout_s": (0.1, 3600.0), "shutdown_timeout_s": (0.0, 3600.0),
              "request_timeout_s": (0.1, 3600.0), "max_batch_items": (1, 1_000_000), "max_batch_mb": (0.001, 4096.0)}

    def check(self) -> None:
        """Every limit within its range (a ValueError naming the option and the range)."""
        for name, (low, high) in self.RANGES.items():
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
                raise ValueError(f"--{name.replace('_', '-').removesuffix('-s')} {value}: give a value from {low} "
                                 f"to {high:,}")

    @property
    def max_body_bytes(self) -> int:
        """The largest request body read: every item at its largest (4 bytes a character, JSON quoting), plus slack."""
        return self.max_items * (self.max_chars * 6 + 64) + 65536

    @property
    def max_batch_body_bytes(self) -> int:
        return int(self.max_batch_mb * 2**20)


class BodyLimit:
    """ASGI middleware: a request body larger than `limit` bytes gets a 413 before it is read whole
    (by its Content-Length, or by counting as it streams in); a body whose next part does not come within
    `timeout` seconds (a slow client, a Content-Length larger than what is sent) gets a 408."""

    def __init__(self, app, limit: int, timeout: float = 30.0, per_path: dict[str, int] | None = None) -> None:
        self.app, self.default, self.timeout, self.per_path = app, limit, timeout, per_path or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.per_path.get(scope.get("path", ""), self.default)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await too_large(limit, send)
        seen, whole, answered = 0, False, False

        async def counted():
            nonlocal seen, whole, answered
            if whole or answered:  # after the body, the app may wait for a disconnect: no deadline on that
                return await receive() if not answered else {"type": "http.disconnect"}
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except asyncio.TimeoutError:
                answered = True  # the app is told the client left; what it would still send is dropped
                await answer(408, f"the request body did not arrive within {self.timeout:g} s", send)
                return {"type": "http.disconnect"}
            seen += len(message.get("body", b""))
            whole = not message.get("more_body", False)
            if seen > limit:
                answered = True
                await too_large(limit, send)
                return {"type": "http.disconnect"}
            return message

        async def unless_answered(message) -> None:
            if not answered:
                await send(message)

        return await self.app(scope, counted, unless_answered)


class Deadline:
    """ASGI middleware: a request not answered within `seconds` gets a 504 (when nothing of its response has been
    sent yet); the work behind it is cancelled."""

    def __init__(self, app, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = {"sent": False}

        async def noted(message):
            if message["type"] == "http.response.start":
                started["sent"] = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, noted), self.seconds)
        except asyncio.TimeoutError:
            if not started["sent"]:
                await answer(504, f"no answer within {self.seconds:g} s (the server's --request-timeout)", send)


class Guard:
    """ASGI middleware: a Host header the server does not answer to gets a 400 (a page elsewhere that points
    its own name at this address cannot read it: DNS rebinding), and with a token every path but /health needs
    `Authorization: Bearer TOKEN` (a 401 otherwise)."""

    def __init__(self, app, allowed_hosts: list[str], token: str | None = None) -> None:
        self.app, self.token = app, token
        self.hosts = None if "*" in allowed_hosts else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.hosts is not None:
            host = host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.hosts:
                return await answer(400, f"Host {host or '(none)'!r} is not served here; allowed: "
                                         f"{', '.join(sorted(self.hosts))} (honed serve --allowed-hosts)", send)
        if self.token is not None and scope.get("path") != "/health":
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, b"Bearer " + self.token.encode()):
                return await answer(401, "missing or wrong token: send Authorization: Bearer <token>", send)
        return await self.app(scope, receive, send)


def host_name(header: str) -> str:
    """The host of a Host header, without its port: "localhost:8000" -> "localhost", "[::1]:80" -> "::1"."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


async def too_large(limit: int, send) -> None:
    await answer(413, f"request body over {limit:,} bytes (the server's limit)", send)


async def answer(status: int, error: str, send) -> None:
    """A JSON {"error": ...} response sent from middleware, before the app sees the request."""
    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


EXPLAIN_ITEMS = 16  # an explanation costs ~50 forward and backward passes: fewer items per request


MAX_CELL_CHARS = 10_000  # a category's text: longer cells are refused before they are encoded


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: Optional[list[str]] = Field(None, description="text models: the texts to classify")
    rows: Optional[list[Union[dict[str, Union[float, str, bool, None]], list[float]]]] = Field(
        None, description="tabular/image models: rows as {column: value} or lists in column order; tables with "
        "category columns take text values and null for a missing cell")
    images: Optional[list[str]] = Field(None, description="image models: image files (JPEG, PNG, WebP, BMP, GIF) as "
                                        "base64 strings, decoded and resized as in training")


    ids: Optional[list[Union[str, int]]] = Field(None, description="one ID per item, answered beside its prediction "
                                                   "so results join back to their inputs")


class BatchRequest(PredictRequest):
    """The same fields, for a file's worth of items."""


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def base_app(description: str, limits: Limits, allowed_hosts: list[str], token: str | None, metrics,
             per_path: dict[str, int] | None = None) -> FastAPI:
    """What every honed server has: the guards (Host, token, body size and pace, deadline), Prometheus counts,
    one-line JSON errors, /health and /metrics. The model's own routes are added by the caller."""
    from honed import __version__
    from honed.serve.metrics import Measured

    app = FastAPI(title="honed model server", version=__version__, description=description)
    app.add_middleware(Deadline, seconds=limits.request_timeout_s)
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes, timeout=limits.body_timeout_s, per_path=per_path)
    app.add_middleware(Guard, allowed_hosts=list(allowed_hosts), token=token)
    app.add_middleware(Measured, metrics=metrics)  # added last: it runs first, so refusals are counted too

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, e: BadRequest):
        return JSONResponse({"error": str(e)}, status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):  # 404, 405, ...: the same shape as ours
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0]
        if first.get("type") == "json_invalid":
            return JSONResponse({"error": f"malformed JSON: {first.get('msg', '')}"}, status_code=400)
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus():
        """Prometheus' text format: honed_requests_total, honed_request_seconds, honed_batch_size."""
        from starlette.responses import Response

        body, kind = metrics.text()
        return Response(body, media_type=kind)

    return app


def create_app(predictor, limits: Limits = Limits(), *, allowed_hosts: list[str] = ("*",),
               token: str | None = None) -> FastAPI:
    from honed import __version__
    from honed.serve.metrics import Metrics

    metrics = Metrics()
    app = base_app(f"{predictor.info.get('model', 'model')} ({predictor.pre.task}) on {predictor.backend}", limits,
                   allowed_hosts, token, metrics, per_path={"/batch_predict": limits.max_batch_body_bytes,
                                                              "/predict/files": limits.max_batch_body_bytes})

    def predict_batch(batch: list) -> list:
        metrics.batch_size.observe(len(batch))
        return predictor.predict(batch)

    batcher = MicroBatcher(predict_batch, limits.max_batch, limits.max_wait_ms / 1000)
    app.state.batcher, app.state.predictor, app.state.metrics = batcher, predictor, metrics
    encoder = getattr(predictor.pre, "column_encoder", None)  # a table with encoded columns takes text and nulls
    columns = encoder.used if encoder is not None else getattr(predictor.pre, "columns", None)

    default_openapi = app.openapi

    def openapi() -> dict:  # /docs and /openapi.json show this run's fields, built once
        if app.openapi_schema is None:
            from honed.serve.schema import with_run_schemas

            app.openapi_schema = with_run_schemas(default_openapi(), predictor, columns, limits)
        return app.openapi_schema

    app.openapi = openapi

    @app.get("/info")
    async def info() -> dict:
        """What the model takes and gives: /metadata plus the outputs (classes with their order, or a value)."""
        pre = predictor.pre
        outputs = ({"prediction": "a class", "probabilities": [f"prob_{c}" for c in pre.labels.names]}
                   if pre.labels else {"prediction": "a number, in the target's units"})
        return await metadata() | {"outputs": outputs}

    @app.get("/metadata")
    async def metadata() -> dict:
        pre = predictor.pre
        if encoder is not None:  # each column with its type: what a typed client needs
            expects = {"rows": "list of {column: value}; null for a missing cell; unseen categories are answered",
                       "columns": columns, "types": {c.name: c.kind for c in encoder.columns}}
        elif pre.kind == "text":
            expects = {"texts": "list of strings"}
        else:
            expects = {"rows": f"list of {{column: number}} or lists of {len(columns)} numbers", "columns": columns}
        return {"model": predictor.info.get("model"), "backend": predictor.backend, "task": pre.task,
                "labels": pre.labels.classes if pre.labels else None, "input": expects,
                "metrics": predictor.info.get("metrics", {}), "recipe": predictor.info.get("recipe"),
                "limits": {k: v for k, v in asdict(limits).items()}, "honed": __version__}

    images = image_reader(predictor)  # image runs also take the files themselves, base64-encoded

    async def checked(body: PredictRequest, max_items: int | None = None) -> list:
        if body.images is not None:
            from starlette.concurrency import run_in_threadpool

            if images is None:
                raise BadRequest(422, "this model does not take images: send "
                                      + ("texts" if predictor.pre.kind == "text" else "rows"))
            if body.rows is not None or body.texts is not None:
                raise BadRequest(422, "send images alone (not with rows or texts)")
            if not body.images or len(body.images) > (max_items or limits.max_items):
                raise BadRequest(413 if body.images else 422, f"{len(body.images)} images; send 1 to "
                                                              f"{max_items or limits.max_items}")
            return await run_in_threadpool(images, body.images)  # decoding is CPU work: off the event loop
        return check(body, predictor.pre.kind, columns, limits, encoded=encoder is not None, max_items=max_items)

    @app.post("/predict")
    async def predict(body: PredictRequest) -> dict:
        items = await checked(body)
        matched(body.ids, items)
        return {"predictions": await batcher.submit(items)} | ({"ids": body.ids} if body.ids is not None else {})

    if images is not None and not accepts_uploads():
        @app.post("/predict/files")
        async def predict_files_unavailable() -> dict:
            raise BadRequest(501, "image files as a form need python-multipart: pip install 'honed[serve]' (or "
                                  "send them base64-encoded to /predict)")
    elif images is not None:
        @app.post("/predict/files")
        async def predict_files(files: list[UploadFile] = File(..., description="image files (JPEG, PNG, WebP, "
                                                                "BMP, GIF), one form field `files` each")) -> dict:
            """Image files uploaded as a form (multipart/form-data), as a browser or `curl -F files=@cat.jpg`
            sends them: predictions in the order sent, beside each file's name. The request's size is bounded
            as a /batch_predict body is (--max-batch-mb), the number of files as --max-items."""
            from starlette.concurrency import run_in_threadpool

            if len(files) > limits.max_items:
                raise BadRequest(413, f"{len(files)} files; send 1 to {limits.max_items}")
            contents = [await f.read() for f in files]
            names = [f.filename or "" for f in files]
            rows = await run_in_threadpool(images, contents, names)  # decoding is CPU work: off the event loop
            return {"predictions": await batcher.submit(rows), "files": names}

    @app.post("/batch_predict")
    async def batch_predict(body: BatchRequest) -> dict:
        """A file's worth of items in one request (up to --max-batch-items), predicted in model calls of
        --max-batch items off the event loop; `ids`, when sent, come back beside the predictions."""
        from starlette.concurrency import run_in_threadpool

        items = await checked(body, limits.max_batch_items)
        matched(body.ids, items)

        def predict_all() -> list:
            return [p for start in range(0, len(items), limits.max_batch)
                    for p in predict_batch(items[start: start + limits.max_batch])]

        predictions = await run_in_threadpool(predict_all)
        return {"predictions": predictions} | ({"ids": body.ids} if body.ids is not None else {})

    @app.post("/explain")
    async def explain(body: PredictRequest) -> dict:
        """Integrated-gradients attributions per word (or column), as honed explain gives them."""
        from starlette.concurrency import run_in_threadpool

        from honed.errors import UserError
        from honed.explanation import explain_loaded

        loaded = getattr(predictor, "loaded", None)
        if loaded is None:
            raise BadRequest(422, f"explanations need the float PyTorch model: serve with --backend torch "
                                  f"(this server runs {predictor.backend})")
        items = check(body, predictor.pre.kind, columns, limits, encoded=encoder is not None)
        if len(items) > EXPLAIN_ITEMS:
            raise BadRequest(413, f"{len(items)} items to explain in one request; the limit is {EXPLAIN_ITEMS}")
        raw = items if predictor.pre.kind == "text" else as_rows(items, encoder is not None)
        try:
            result = await run_in_threadpool(explain_loaded, loaded, raw)
        except UserError as e:
            raise BadRequest(422, str(e)) from None
        return {"steps": result.steps, "explanations": [
            {k: it[k] for k in ("names", "attributions", "prediction", "probability", "explains", "completeness_gap")
             if k in it} for it in result.items]}

    return app


def matched(ids: list | None, items: list) -> None:
    if ids is not None and len(ids) != len(items):
        raise BadRequest(422, f"ids has {len(ids)} entries for {len(items)} items: send one per item")


def image_reader(predictor):
    """For an image run, a function from image files (base64 text, or the bytes themselves with their names) to
    pixel rows as training decoded them (the run's data settings: size, resize, channels, max_pixels — from its
    recipe, or an ONNX bundle's bundle.json); None for other runs."""
    import base64
    import binascii

    from honed.data.pixels import UnreadableImage, decode_file, stacked
    from honed.data.sources.images import decoding

    image = predictor.info.get("image") or decoding(predictor.info.get("recipe"), getattr(predictor.pre,
                                                                                           "image_shape", None))
    if not image:
        return None

    def read(files: list[str] | list[bytes], names: list[str] | None = None) -> list:
        pixels = []
        for i, file in enumerate(files):
            which = f"files[{i}] ({shown(names[i])})" if names is not None else f"images[{i}]"
            try:
                data = file if isinstance(file, bytes) else base64.b64decode(file, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest(422, f"{which}: not base64") from None
            try:
                pixels.append(decode_file(data, image["size"], image["resize"], image["max_pixels"]))
            except (UnreadableImage, OSError, ValueError) as e:
                raise BadRequest(422, f"{which}: cannot read this image ({e})") from None
        return stacked(pixels, image["channels"] == 1).tolist()

    return read


def shown(name: str) -> str:
    """A client's file name as an error line shows it: at most 80 characters, nothing unprintable."""
    return "".join(c if c.isprintable() else "?" for c in name[:80]) + ("..." if len(name) > 80 else "")


def accepts_uploads() -> bool:
    """Whether FastAPI can read multipart forms here (python-multipart, in honed[serve])."""
    try:
        import python_multipart  # noqa: F401
    except ImportError:
        return False
    return True


def as_rows(items: list, encoded: bool):
    """Checked rows in the preprocessor's form: a DataFrame for encoded tables, else a float32 matrix."""
    if encoded:
        import pandas as pd

        return pd.DataFrame(items)
    return np.asarray(items, dtype=np.float32)


def check(body: PredictRequest, kind: str, columns: list[str] | None, limits: Limits, encoded: bool = False,
          max_items: int | None = None) -> list:
    """The request's items in the predictor's form, or a BadRequest naming what is wrong."""
    max_items = max_items or limits.max_items
    if kind == "text":
        if body.rows is not None or body.texts is None:
            raise BadRequest(422, "this is a text model: send {\"texts\": [\"...\", ...]}")
        items = body.texts
    else:
        if body.texts is not None or body.rows is None:
            raise BadRequest(422, f"this model takes feature rows: send {{\"rows\": [{{column: value}}, ...]}} "
                                  f"with columns {', '.join(columns)}")
        reader = table_row if encoded else row_values
        items = [reader(row, columns, i) for i, row in enumerate(body.rows)]
    if not items:
        raise BadRequest(422, "empty batch: send at least one item")
    if len(items) > max_items:
        raise BadRequest(413, f"{len(items)} items in one request; the limit is {max_items}")
    if kind == "text":
        for i, text in enumerate(items):
            if len(text) > limits.max_chars:
                raise BadRequest(413, f"texts[{i}] has {len(text)} characters; the limit is {limits.max_chars}")
    return items


def row_values(row, columns: list[str], i: int) -> list[float]:
    if isinstance(row, dict):
        missing = [c for c in columns if c not in row]
        extra = [c for c in row if c not in columns]
        if missing or extra:
            raise BadRequest(422, f"rows[{i}]: " + "; ".join(
                part for part in (f"missing {', '.join(missing)}" if missing else "",
                                  f"unknown {', '.join(extra)}" if extra else "") if part))
        values = [float(row[c]) for c in columns]
    elif len(row) != len(columns):
        raise BadRequest(422, f"rows[{i}] has {len(row)} values; the model takes {len(columns)}")
    else:
        values = [float(v) for v in row]
    if not all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in values):
        raise BadRequest(422, f"rows[{i}]: values must be finite numbers within float32's range (|x| <= 3.4e38)")
    return values


def table_row(row, columns: list[str], i: int) -> dict:
    """A row of a table with encoded columns: {column: number, text, boolean or null}; extra keys are ignored
    (a client may send its own ID), a missing column is named. Text is bounded like a category needs."""
    if not isinstance(row, dict):
        raise BadRequest(422, f"rows[{i}]: send {{column: value}} with columns {', '.join(columns)}")
    missing = [c for c in columns if c not in row]
    if missing:
        raise BadRequest(422, f"rows[{i}]: missing {', '.join(missing)} (send null for a missing cell)")
    values = {c: row[c] for c in columns}
    for c, v in values.items():
        if isinstance(v, str) and len(v) > MAX_CELL_CHARS:
            raise BadRequest(413, f"rows[{i}].{c} has {len(v)} characters; a cell holds at most {MAX_CELL_CHARS}")
        if isinstance(v, float) and not math.isfinite(v):
            values[c] = None
    return values
