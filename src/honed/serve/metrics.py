"""Prometheus metrics of a served run (prometheus-client): requests by endpoint and status, their latency, and
the size of each model call the micro-batcher makes. Each app has its own registry, read at GET /metrics."""

from __future__ import annotations

import time

ENDPOINTS = ("/predict", "/explain", "/health", "/metadata", "/info", "/metrics")  # others count as "other"


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("honed_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("honed_request_seconds", "time from a request's start to its response's end",
                                 ["endpoint"], registry=self.registry)
        self.batch_size = Histogram("honed_batch_size", "items per model call (micro-batching)",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=self.registry)

    def text(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Measured:
    """ASGI middleware: every HTTP request counted by endpoint and status, and timed."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = scope.get("path") if scope.get("path") in ENDPOINTS else "other"
        status = {"code": 500}
        started = time.perf_counter()

        async def noted(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
