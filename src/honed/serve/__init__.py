"""Serving a run over HTTP: FastAPI app with server-side micro-batching, run by uvicorn.

`honed.serve(run_dir)` serves a run: this package is callable (it calls `serve` below), so the facade's name and
the subpackage's are one object and importing the package never replaces the function."""

import sys

from honed.serve.app import Limits, create_app
from honed.serve.batcher import MicroBatcher

__all__ = ["create_app", "Limits", "MicroBatcher", "serve"]


def chosen_backend(run_dir, backend: str) -> str:
    """`backend` itself, or for `auto` the faster int8 version that `honed quantize` measured for this run."""
    from pathlib import Path

    from honed import runfiles
    from honed.errors import UserError
    from honed.run import read_json

    if backend != "auto":
        return backend
    report = Path(run_dir) / runfiles.QUANTIZED_DIR / runfiles.QUANTIZED_REPORT
    if not report.is_file():
        raise UserError(f"--backend auto: {report} is missing; run honed quantize {run_dir} first")
    return read_json(report)["backend"]


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(run_dir, host: str = "127.0.0.1", port: int = 8000, backend: str = "torch", limits: Limits | None = None,
          *, allowed_hosts: list[str] | None = None, token: str | None = None, max_new_tokens: int = 512):
    """Load the run on `backend` (or `auto`: the faster int8 version measured by honed quantize) and serve it
    until interrupted (SIGTERM or Ctrl-C: requests in flight get limits.shutdown_timeout_s).

    Bound to this machine alone (the default), the server answers only requests that name it as localhost or its
    loopback address in their Host header; bound wider, `allowed_hosts` names the names it answers to (default:
    any). With a `token` (honed serve: $HONED_SERVE_TOKEN) every path but /health needs it as a bearer token."""
    import logging
    import socket

    import uvicorn

    from honed.errors import UserError
    from honed.export import load_predictor
    from honed.serve.timeouts import TimedH11Protocol

    limits = limits or Limits()
    if not 0 < port < 65536:
        raise UserError(f"--port {port}: give a port between 1 and 65535")
    try:
        limits.check()
    except ValueError as e:
        raise UserError(str(e)) from None
    if token is not None and len(token) < 16:
        raise UserError("the token ($HONED_SERVE_TOKEN) has fewer than 16 characters; use a long random one "
                        "(python -c 'import secrets; print(secrets.token_urlsafe())')")
    hosts = allowed_hosts or (["127.0.0.1", "localhost", "::1"] if host in LOOPBACK else ["*"])
    if host not in LOOPBACK and token is None:
        logging.getLogger("honed").warning(f"serve: listening on {host} without a token: anyone who reaches this "
                                           "port can call the model and read /metadata; set $HONED_SERVE_TOKEN")
    try:  # before the model loads: a port in use is one line, at once
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise UserError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); "
                        "choose another port") from None
    if not 1 <= max_new_tokens <= 4096:
        raise UserError(f"--max-new-tokens {max_new_tokens}: give 1 to 4096")
    from honed.api import Run

    if Run.open(run_dir).recipe.model.name == "causal_lm":  # it writes: /generate (serve/generate.py)
        from honed.serve.generate import create_generation_app

        app = create_generation_app(run_dir, limits, allowed_hosts=hosts, token=token, max_new_tokens=max_new_tokens,
                                    backend=chosen_backend(run_dir, backend))
    else:
        app = create_app(load_predictor(run_dir, chosen_backend(run_dir, backend)), limits, allowed_hosts=hosts,
                         token=token)
    TimedH11Protocol.header_timeout = limits.header_timeout_s
    config = uvicorn.Config(app, host=host, port=port, log_level="info", http=TimedH11Protocol,
                            timeout_keep_alive=max(1, round(limits.idle_timeout_s)),
                            timeout_graceful_shutdown=round(limits.shutdown_timeout_s),
                            h11_max_incomplete_event_size=64 * 1024)  # a request line and headers: 64 KB at most
    uvicorn.Server(config).run()


class _CallablePackage(sys.modules[__name__].__class__):
    """honed.serve(run_dir, ...) is honed.serve.serve(run_dir, ...)."""

    def __call__(self, *args, **kwargs):
        return serve(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
