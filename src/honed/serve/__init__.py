"""Serving a run over HTTP: FastAPI app with server-side micro-batching, run by uvicorn."""

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


def serve(run_dir, host: str = "127.0.0.1", port: int = 8000, backend: str = "torch", limits: Limits | None = None):
    """Load the run on `backend` (or `auto`: the faster int8 version measured by honed quantize) and serve it
    until interrupted."""
    import socket

    import uvicorn

    from honed.errors import UserError
    from honed.export import load_predictor

    if not 0 < port < 65536:
        raise UserError(f"--port {port}: give a port between 1 and 65535")
    try:  # before the model loads: a port in use is one line, at once
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise UserError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); "
                        "choose another port") from None
    app = create_app(load_predictor(run_dir, chosen_backend(run_dir, backend)), limits or Limits())
    uvicorn.run(app, host=host, port=port, log_level="info")
