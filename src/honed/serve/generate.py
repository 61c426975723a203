"""The HTTP API of a served causal language model: completions of prompts.

    POST /generate  {"prompts": ["..."]} or {"messages": [[{"role": "user", "content": "..."}], ...]}, with
                    optional max_new_tokens, temperature, top_p, stop -> {"completions": ["...", ...]};
                    with "stream": true, one prompt's completion as server-sent events as it is written
    GET  /info      the model, its context, the test perplexity, the limits
    GET  /health, /metrics, /docs   as every honed server (app.base_app: the same guards and limits)

Requests are bounded as /predict's are (items per request, characters per prompt or message, body size, a
deadline); a completion's new tokens are bounded by --max-new-tokens. The model writes one completion at a
time, off the event loop, all in one long-lived thread: generation is CPU or GPU work, and two at once would only
share the same cores.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Iterator, Optional

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from honed.serve.app import BadRequest, Limits, base_app

STREAM_SHARE = 0.95  # of --request-timeout: a streamed completion ends itself, its last event sent in time


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(..., description="system, user or assistant")
    content: str


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompts: Optional[list[str]] = Field(None, description="texts to continue, as they are")
    messages: Optional[list[list[Message]]] = Field(None, description="conversations, through the model's chat "
                                                    "template with the assistant's turn opened")
    max_new_tokens: Optional[int] = Field(None, ge=1, description="new tokens per completion at most (default: "
                                          "128, or the server's --max-new-tokens when lower)")
    temperature: float = Field(0.0, ge=0, le=10, description="0: greedy, the same completion every time")
    top_p: float = Field(1.0, gt=0, le=1, description="sampled: the smallest set of tokens holding this probability")
    stop: list[str] = Field(default_factory=list, max_length=16, description="a completion ends before any of these")
    stream: bool = Field(False, description="one prompt, its completion sent as it is written: server-sent events "
                         'data: {"text": piece}, then data: {"done": true, "completion": the whole text}')


def create_generation_app(run_dir, limits: Limits = Limits(), *, allowed_hosts: list[str] = ("*",),
                          token: str | None = None, max_new_tokens: int = 512, backend: str = "torch") -> FastAPI:
    from honed import __version__
    from honed.api import Run
    from honed.errors import UserError
    from honed.evaluation.generation import Sampling, complete, fitting_ids, read_prompts, stream
    from honed.serve.metrics import Metrics

    run = Run.open(run_dir)
    recipe, model, pre = run.load()
    if backend not in ("torch", "torch-int8"):
        raise UserError(f"--backend {backend}: a causal language model is served by torch or torch-int8 "
                        "(honed quantize measures the int8 one)")
    if backend == "torch-int8":
        from honed.export.quantize import torch_int8

        model = torch_int8(model)
    context = int(getattr(model.base.config, "max_position_embeddings", 0) or recipe.data.max_length)
    metrics = Metrics()
    app = base_app(f"{recipe.name}: a causal language model ({model.base.config.model_type})", limits, allowed_hosts,
                   token, metrics)
    # every completion is written by this one long-lived thread, in turn: two at once would only share the same
    # cores, and on this CPU build small matrix products ran 1.6x slower whenever the thread doing them changed
    # (OpenMP thread teams waking each other: benchmarks/generate_stream.py)
    writer = ThreadPoolExecutor(1, thread_name_prefix="honed-generate")

    @app.get("/info")
    async def info() -> dict:
        return {"model": recipe.name, "task": "language_modeling", "architecture": model.base.config.model_type,
                "context": context, "max_new_tokens": max_new_tokens, "backend": backend, "metrics": run.summary.get("test", {}),
                "input": {"prompts": "list of strings", "messages": "list of [{role, content}] conversations"},
                "limits": asdict(limits), "honed": __version__}

    @app.post("/generate")
    async def generate(body: GenerateRequest) -> dict:
        items = body.prompts if body.prompts is not None else body.messages
        if (body.prompts is None) == (body.messages is None):
            raise BadRequest(422, "send either prompts (a list of strings) or messages (a list of conversations)")
        if not items:
            raise BadRequest(422, "empty batch: send at least one prompt")
        if len(items) > limits.max_items:
            raise BadRequest(413, f"{len(items)} prompts in one request; the limit is {limits.max_items}")
        wanted = min(128, max_new_tokens) if body.max_new_tokens is None else body.max_new_tokens
        if wanted > max_new_tokens:
            raise BadRequest(422, f"max_new_tokens {wanted}: the server allows at most {max_new_tokens}")
        raw = items if body.prompts is not None else [[m.model_dump() for m in c] for c in items]
        try:
            sampling = Sampling(wanted, body.temperature, body.top_p, body.stop)
            prompts = read_prompts(raw, limits.max_chars)
        except UserError as e:
            raise BadRequest(413 if "characters, more than" in str(e) else 422, str(e)) from None

        if body.stream:
            return streamed(prompts, sampling)

        def write() -> list[str]:
            metrics.batch_size.observe(len(prompts))
            return complete(model, pre.tokenizer, prompts, sampling, context)

        try:
            return {"completions": await asyncio.wrap_future(writer.submit(write))}
        except UserError as e:  # a prompt longer than the model's context
            raise BadRequest(413, str(e)) from None

    def streamed(prompts: list, sampling) -> StreamingResponse:
        """One prompt's completion as server-sent events; checked before the first byte goes (a prompt too long is
        a 413 like any other), then written one completion at a time like the others. It ends within the server's
        --request-timeout, the last event saying it was cut."""
        if len(prompts) != 1:
            raise BadRequest(422, f"stream: send one prompt per streamed request (got {len(prompts)})")
        try:
            ids = fitting_ids(prompts[0], pre.tokenizer, context)
        except UserError as e:
            raise BadRequest(413, str(e)) from None
        deadline = time.monotonic() + STREAM_SHARE * limits.request_timeout_s

        def events() -> Iterator[str]:
            metrics.batch_size.observe(1)
            pieces = []
            for piece in stream(model, pre.tokenizer, ids, sampling, context, deadline, writer):
                pieces.append(piece)
                yield event({"text": piece})
            end = {"done": True, "completion": "".join(pieces)}
            if time.monotonic() >= deadline:
                end["cut"] = f"the server's --request-timeout ({limits.request_timeout_s:g} s)"
            yield event(end)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    return app


def event(data: dict) -> str:
    """One server-sent event carrying a JSON object."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
