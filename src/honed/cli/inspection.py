"""Commands that look inside a finished run: explain its predictions, diagnose its training."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from honed import runfiles


def register(sub) -> dict[str, Callable]:
    """Add this group's commands to `sub`; their handlers by name."""
    x = sub.add_parser("explain", help="why the model said what it said: integrated-gradients attributions per word "
                       "or column, checked for completeness; explain.html")
    x.add_argument("run_dir")
    x.add_argument("--text", action="append", default=[], help="a text to explain (repeatable)")
    x.add_argument("--input", help="a file of inputs, as honed predict reads them")
    x.add_argument("--steps", type=int, default=50, help="integration steps to start from (raised until "
                   "completeness holds within 5%%)")
    x.add_argument("--method", default="ig", help="ig (integrated gradients, default; completeness enforced), "
                   "gradient_shap or occlusion")
    x.add_argument("--baseline", default="auto", help="tables and images: mean (the training mean) or zero (raw "
                   "zeros, black); auto: zero for images, mean otherwise. Text starts from padding")
    x.add_argument("--sanity", action="store_true", help="also run the model-randomization check")
    x.add_argument("--global", dest="overall", action="store_true", help="explain a sample of the test split and "
                   "rank the words (or columns) that push toward each class")
    x.add_argument("--rows", type=int, default=200, help="with --global: test inputs sampled (default 200)")
    x.add_argument("--out", help="report folder (default RUN_DIR/explain)")

    dr = sub.add_parser("doctor", help="what is wrong with a run, proved with its own numbers, and the --set changes "
                        "that fix it; doctor.json, doctor.md")
    dr.add_argument("run_dir")
    dr.add_argument("--fix", nargs="?", type=int, const=1, default=0, metavar="K",
                    help="apply the top K findings' advice (default 1), retrain with the same seed and keep what beats "
                    "the validation noise; writes DIR/fixed.yaml")
    dr.add_argument("--budget", type=float, help="seconds the --fix retrains may take in all")
    dr.add_argument("--out", help="where doctor.json/doctor.md go (default RUN_DIR; --fix runs under DIR/doctor)")
    dr.add_argument("--no-probes", action="store_true", help="read the run's files only: no data, no model probes")
    return {"explain": cmd_explain, "doctor": cmd_doctor}


def cmd_explain(args) -> int:
    from honed.errors import UserError
    from honed.explanation import explain, write_report

    if (bool(args.text) + bool(args.input) + args.overall) != 1:
        raise UserError("explain needs one of: --text \"...\" (repeatable), --input FILE, --global")
    if args.overall:
        from honed.explanation import explain_test_rows

        if args.rows < 1:
            raise UserError(f"--rows {args.rows}: give at least 1")
        result = explain_test_rows(args.run_dir, rows=args.rows, steps=args.steps)
        for label, words in result.overall.items():
            print(f"toward {label}: " + ", ".join(f"{w['name']} {w['mean']:+.2f}" for w in words))
        gaps = sorted(it["completeness_gap"] for it in result.items)
        print(f"{len(result.items)} test inputs; completeness gap median {100 * gaps[len(gaps) // 2]:.2f}%, "
              f"worst {100 * gaps[-1]:.2f}%")
    else:
        result = explain(args.run_dir, args.text or args.input, steps=args.steps, sanity=args.sanity,
                         method=args.method, baseline=args.baseline)
    for it in ([] if args.overall else result.items):
        ranked = sorted(zip(it["attributions"], it["names"]), key=lambda pair: -abs(pair[0]))[:6]
        shown = ", ".join(f"{name} {value:+.3f}" for value, name in ranked)
        probability = f" ({100 * it['probability']:.1f}%)" if "probability" in it else ""
        gap = it["completeness_gap"]
        gap = f"completeness gap {100 * gap:.1f}%" if gap is not None else "occlusion: no sum to check"
        print(f"{it['prediction']}{probability}: {shown} ({gap})")
    if result.sanity:
        verdict = "passed" if result.sanity["passed"] else "FAILED: the attributions barely depend on the weights"
        print(f"randomization check: median rank correlation {result.sanity['median_rank_correlation']:.2f}, {verdict}")
    _, page = write_report(result, Path(args.out) if args.out else None)  # default: the run's folder and page
    print(f"steps: {result.steps}; page: {page}")
    return 0


def cmd_doctor(args) -> int:
    from honed.diagnosis import doctor
    from honed.diagnosis import report as page
    from honed.errors import UserError

    if args.fix < 0:
        raise UserError(f"--fix {args.fix}: give how many findings to try, at least 1")
    if args.budget is not None and args.budget <= 0:
        raise UserError(f"--budget {args.budget:g}: give a number of seconds above 0")
    diagnosis = doctor(args.run_dir, probes=not args.no_probes)
    page.show(diagnosis)
    data, md = page.write(diagnosis, Path(args.out) if args.out else None)  # default: the run's folder and page
    print(f"doctor: {len(diagnosis.findings)} finding(s) in {diagnosis.seconds:.1f} s; {data}, {md}")
    if args.fix:
        from honed.diagnosis.fix import fix

        result = fix(args.run_dir, diagnosis, args.fix, args.budget, Path(args.out) / runfiles.DOCTOR_DIR if args.out else None)
        for row in result["tried"]:
            if "skipped" in row:
                print(f"fix: {row['change']}: skipped, {row['skipped']}")
            else:
                verdict = "kept" if row["kept"] else f"dropped (not above the noise, ±{row['noise']:.4g})"
                print(f"fix: {row['change']}: {row['metric']} {row['before']:.4g} -> {row['after']:.4g}, {verdict}")
        print(f"fix: val {result['metric']} {result['before']:.4g} -> {result['after']:.4g}"
              + (f"; improved recipe: {result['fixed']}" if result["fixed"] else "; no change kept"))
    return 0
