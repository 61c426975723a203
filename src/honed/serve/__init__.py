"""Serving a run over HTTP: FastAPI app with server-side micro-batching, run by uvicorn."""

from honed.serve.app import Limits, create_app
from honed.serve.batcher import MicroBatcher

__all__ = ["create_app", "Limits", "MicroBatcher", "serve"]


def serve(run_dir, host: str = "127.0.0.1", port: int = 8000, backend: str = "torch", limits: Limits | None = None):
    """Load the run on `backend` and serve it until interrupted."""
    import uvicorn

    from honed.export import load_predictor

    app = create_app(load_predictor(run_dir, backend), limits or Limits())
    uvicorn.run(app, host=host, port=port, log_level="info")
