"""Commands that ship a finished run: export to ONNX, quantize, serve over HTTP."""

from __future__ import annotations

from typing import Callable

from honed.cli.common import show_table


def register(sub) -> dict[str, Callable]:
    """Add this group's commands to `sub`; their handlers by name."""
    ex = sub.add_parser("export", help="export a run to ONNX, checked against PyTorch with onnxruntime")
    ex.add_argument("run_dir")
    ex.add_argument("--format", default="onnx", choices=["onnx"], help="onnx (the only one so far)")
    ex.add_argument("--out", help="bundle folder (default RUN_DIR/onnx)")
    ex.add_argument("--input", help="inputs to check the export on (default: the run's test split)")

    qu = sub.add_parser("quantize", help="int8 dynamic quantization: accuracy, size and latency before/after")
    qu.add_argument("run_dir")
    qu.add_argument("--input", help="inputs to time on (default: the run's test split, which also gives accuracy)")

    sv = sub.add_parser("serve", help="serve a run over HTTP (FastAPI + uvicorn; /predict, /batch_predict, /explain, /info, /metrics, /health, /docs; a causal language model: /generate)")
    sv.add_argument("run_dir")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--backend", default="torch", help="torch (default), onnx, torch-int8, onnx-int8, or auto "
                    "(the faster int8 version measured by honed quantize)")
    sv.add_argument("--max-batch", type=int, default=64, help="items per model call when requests are batched")
    sv.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a request waits to share a model call")
    sv.add_argument("--max-items", type=int, default=256, help="items allowed in one request")
    sv.add_argument("--max-batch-items", type=int, default=10_000, help="items allowed in one /batch_predict request")
    sv.add_argument("--max-batch-mb", type=float, default=64.0, help="megabytes of one /batch_predict or /predict/files request body")
    sv.add_argument("--header-timeout", type=float, default=10.0, help="seconds for a request's headers to arrive")
    sv.add_argument("--body-timeout", type=float, default=30.0, help="seconds between two parts of a request body")
    sv.add_argument("--idle-timeout", type=float, default=5.0, help="seconds a kept-alive idle connection stays open")
    sv.add_argument("--shutdown-timeout", type=float, default=10.0, help="seconds requests in flight get on SIGTERM")
    sv.add_argument("--request-timeout", type=float, default=60.0, help="seconds before a request is answered 504")
    sv.add_argument("--max-new-tokens", type=int, default=512, help="a causal language model: new tokens per "
                    "completion at most (a request asks for fewer)")
    sv.add_argument("--allowed-hosts", help="comma-separated names the server answers to in the Host header "
                    "(default: localhost and its addresses when bound to 127.0.0.1; any when bound wider)")
    pr = sub.add_parser("prune", help="structured pruning: a smaller, faster copy of a run (fewer units and "
                        "channels, not masks), fine-tuned, measured before/after")
    pr.add_argument("run_dir")
    pr.add_argument("--target", type=float, default=0.5, help="share of the model to take out (0-1, default 0.5)")
    pr.add_argument("--by", default="macs", help="what --target counts: macs (multiply-adds, default) or params")
    pr.add_argument("--criterion", default="magnitude", help="which units go: magnitude (default), taylor, random")
    pr.add_argument("--finetune-epochs", type=int, help="epochs of fine-tuning per round (default: a quarter of the "
                    "run's)")
    pr.add_argument("--budget", type=float, help="seconds all fine-tuning may take instead: its epochs chosen from "
                    "the run's own time per epoch, stopped when they are spent")
    pr.add_argument("--rounds", type=int, default=1, help="reach --target in this many prune + fine-tune rounds, "
                    "each taking the same share of what is left (default 1)")
    pr.add_argument("--out", help="the pruned run's directory (default runs/<recipe>-pruned-<timestamp>)")
    pr.add_argument("--distill", action="store_true", help="fine-tune toward the unpruned model's softened outputs "
                    "too (it is the teacher), not only the labels")
    pr.add_argument("--structured", default="true", choices=["true", "false"], help="false: set the smallest weights "
                    "to zero instead (sparsity for compression: no speed-up; needs --by params)")
    return {"export": cmd_export, "quantize": cmd_quantize, "serve": cmd_serve, "prune": cmd_prune}


def cmd_prune(args) -> int:
    from honed.export.prune import prune

    report = prune(args.run_dir, target=args.target, by=args.by, criterion=args.criterion,
                   finetune_epochs=args.finetune_epochs, out=args.out, structured=args.structured == "true",
                   distill=args.distill, rounds=args.rounds, budget=args.budget)
    show_table(report["versions"], f"prune (test split, {report['rows']} rows, per example, this machine)")
    d = report["pruned_vs_before"]
    print("speed-up: " + ", ".join(f"{kind.replace(' ms', '')} {v:.2f}x" for kind, v in report["speed_up"].items()))
    changed = (report["widths_changed"] if report["structured"]
               else f"{report['target']:.0%} of the weights zero (the same shapes: no speed-up)")
    print(f"{changed}; pruned - before: "
          f"{d['difference']:+.3g} {d['metric']}{' points' if d['metric'] == 'accuracy' else ''}, paired p = "
          f"{d['p']:.3g} ({'significant' if d['significant'] else 'within noise'}); run: {report['path']}")
    return 0


def cmd_export(args) -> int:
    from honed.export import export_onnx

    info = export_onnx(args.run_dir, out=args.out, inputs=args.input)
    if info.get("format") == "transformers":  # a causal LM: a merged folder, not ONNX (export/merged.py)
        print(f"exported: {info['path']} (a folder transformers loads; {info['bytes'] / 1e6:.2f} MB); max "
              f"|reloaded - run| {info['check']['max_abs_difference']:.2e} on {info['check']['rows']} test rows")
        return 0
    print(f"exported: {info['path']}/model.onnx ({info['bytes'] / 1e6:.2f} MB); max |onnx - torch| "
          f"{info['check']['max_abs_difference']:.2e} on {info['check']['rows']} rows (onnxruntime)")
    return 0


def cmd_quantize(args) -> int:
    from honed.export import quantize

    report = quantize(args.run_dir, inputs=args.input)
    show_table([{k: v for k, v in row.items()} for row in report["versions"]], "quantize (CPU, this machine)")
    print(f"faster int8 version: {report['chosen']} (serve it with --backend {report['backend']}); "
          f"report: {report['path']}/report.json")
    return 0


def cmd_serve(args) -> int:
    from honed.serve import Limits, serve

    import os

    limits = Limits(args.max_items, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                    header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
                    idle_timeout_s=args.idle_timeout, shutdown_timeout_s=args.shutdown_timeout,
                    request_timeout_s=args.request_timeout, max_batch_items=args.max_batch_items,
                    max_batch_mb=args.max_batch_mb)
    hosts = [h.strip() for h in args.allowed_hosts.split(",") if h.strip()] if args.allowed_hosts else None
    serve(args.run_dir, args.host, args.port, args.backend, limits, allowed_hosts=hosts,
          token=os.environ.get("HONED_SERVE_TOKEN") or None, max_new_tokens=args.max_new_tokens)
    return 0
