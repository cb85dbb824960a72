"""Local CLI: run the engine with no server.

    shears prune model.onnx --sparsity 0.8 -o out/      (pruned model + report.json in out/)
    shears inspect model.pt

Exit status 0 on success, 2 on bad input (the message says what to fix).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pruning.engine import prune
from pruning.errors import EngineError
from pruning.inspection import inspect_model
from pruning.spec import DEFAULT_METHOD, LatencySpec, PruneSpec
from pruning.training.cli_options import add_training_options, metric_line, training_fields
from pruning.training.learned import is_learned
from shears_methods import names

BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return int(exc.code or 0)
    try:
        if args.command == "inspect":
            print(json.dumps(inspect_model(args.model, args.format), indent=2))
            return 0
        return _prune(args)
    except EngineError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return BAD_INPUT
    except ValueError as exc:  # malformed --input-shape / --override values
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT


def prune_command(args: list[str]) -> int:
    """`shears prune ARGS`."""
    return main(["prune", *args])


def inspect_command(args: list[str]) -> int:
    """`shears inspect ARGS`."""
    return main(["inspect", *args])


def _prune(args: argparse.Namespace) -> int:
    if is_learned(args.method) and args.retrain_data is None:
        raise ValueError(
            f"--method {args.method} learns which weights to drop while training: give "
            "--retrain-data FILE.npz (inputs, and labels or --loss distill) and --epochs"
        )
    spec = _spec(args)
    fields, datasets = training_fields(args)
    spec.update(fields)
    # Stages differ wildly in cost, so a rate or an ETA would mislead: show stage and elapsed.
    bar_format = "{desc:<9}{percentage:3.0f}%|{bar}| {elapsed}"
    with tqdm(
        total=100, file=sys.stderr, disable=args.quiet, leave=False, bar_format=bar_format
    ) as bar:

        def progress(stage: str, fraction: float, info: dict[str, Any] | None) -> None:
            bar.set_description(stage)
            bar.update(round(fraction * 100) - bar.n)

        result = prune(args.model, spec, args.output, args.format, progress, datasets)
    report_path = args.output / "report.json"
    report_path.write_text(json.dumps(result.report, indent=2) + "\n")
    print(summary(result.report, result.artifacts["model"], report_path))
    return 0


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "method": {"name": args.method, **({"seed": args.seed} if args.seed is not None else {})},
        "sparsity": args.sparsity,
        "scope": args.scope,
        "layers": {
            "include": args.include or ["*"],
            "exclude": args.exclude,
            "overrides": dict(_pair(o, "--override", float) for o in args.override),
        },
        "latency": None
        if args.no_latency
        else {
            "batch_sizes": _ints(args.batch_sizes, "--batch-sizes"),
            "threads": args.threads,
            "warmup": args.warmup,
            "iterations": args.iterations,
            "budget_s": args.latency_budget,
        },
    }
    if args.input_shape:
        spec["input_shapes"] = dict(
            _pair(s, "--input-shape", lambda v: _ints(v, "--input-shape")) for s in args.input_shape
        )
    return spec


def _pair(text: str, flag: str, convert: Any) -> tuple[str, Any]:
    name, sep, value = text.rpartition("=")
    if not sep or not name:
        raise ValueError(f"{flag} takes NAME=VALUE, got {text!r}")
    return name, convert(value)


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated integers, got {text!r}") from None


def summary(report: dict[str, Any], model: Path, report_path: Path) -> str:
    """A few lines a person reads: layers, storage, latency, fidelity."""
    lines = [f"pruned model: {model}", f"report:       {report_path}", ""]
    lines += _layer_table(report["sparsity"])
    lines += [f"warning: {w}" for w in report["sparsity"].get("warnings", [])]
    lines += [
        f"skipped {s['tensor']}" + (f" ({s['node']})" if s["node"] else "") + f": {s['reason']}"
        for s in report.get("skipped", [])
    ]
    lines += ["", *_storage_lines(report["storage"])]
    if report["latency"] is not None:
        lines += ["", *_latency_lines(report["latency"])]
    lines += ["", fidelity_line(report["quality"]["fidelity"])]
    lines += metric_line(report)
    lines += learned_line((report.get("training") or {}).get("learned"))
    return "\n".join(lines)


def learned_line(learned: dict[str, Any] | None) -> list[str]:
    """How far the learned mask was from the target before the exact projection."""
    if not learned:
        return []
    return [
        f"{learned['method']} learned density {learned['learned_density']:.4f} before the "
        f"projection onto {learned['target_density']:.4f} (gap {learned['gap']:+.4f})"
    ]


def fidelity_line(fid: dict[str, Any]) -> str:
    where = f"{fid.get('samples') or 'no'} samples of {fid.get('source', 'synthetic inputs')}"
    if fid.get("measured") is False:
        return f"fidelity not measured ({where}): {fid.get('reason')}"
    top1 = "n/a" if fid["top1_agreement"] is None else f"{fid['top1_agreement']:.3f}"
    return (
        f"fidelity ({where}): cosine {_num(fid['output_cosine'])}, "
        f"max |diff| {_num(fid['max_abs_diff'])}, top-1 agreement {top1}"
    )


def _layer_table(sparsity: dict[str, Any]) -> list[str]:
    rows = [("layer", "shape", "params", "nonzeros", "sparsity")]
    rows += [
        (
            layer["name"],
            "x".join(map(str, layer["shape"])),
            str(layer["parameters"]),
            str(layer["nonzeros"]),
            f"{layer['sparsity']:.4f}",
        )
        for layer in sparsity["layers"]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    table = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return [
        *table,
        f"achieved sparsity {sparsity['achieved']:.4f} (target {sparsity['target']}, "
        f"{sparsity['scope']}); whole model {sparsity['model_sparsity']:.4f} "
        f"of {sparsity['total_parameters']} parameters",
    ]


def _storage_lines(storage: dict[str, Any]) -> list[str]:
    f = storage["formats"]
    return [
        f"storage of pruned tensors: dense {_kib(storage['dense_bytes'])}, "
        f"CSR {_kib(f['csr'])}, bitmask {_kib(f['bitmask'])}",
        f"model file: {_kib(f['file'])} ({_kib(f['file_zip'])} deflated); "
        f"original {_kib(f['dense_file'])} ({_kib(f['dense_file_zip'])} deflated)",
    ]


def _latency_lines(latency: dict[str, Any]) -> list[str]:
    lines = [f"latency ({latency['runtime']}, {latency['threads']} thread(s), p50):"]
    for r in latency["results"]:
        lines.append(
            f"  batch {r['batch_size']}: dense {r['dense_ms']['p50']:.3f} ms, "
            f"pruned {r['pruned_ms']['p50']:.3f} ms, speedup {r['speedup']} ({r['verdict']})"
        )
    lines += [f"  batch {s['batch_size']}: skipped ({s['reason']})" for s in latency["skipped"]]
    return lines + ([f"  note: {latency['note']}"] if latency["note"] else [])


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shears", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="describe a model file as JSON")
    inspect.add_argument("model", type=Path)
    inspect.add_argument("--format", choices=["onnx", "torchscript"])
    _add_prune(commands.add_parser("prune", help="prune a model into a directory"))
    return parser


def _add_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path)
    p.add_argument("--sparsity", type=float, required=True, help="fraction of weights to zero")
    # Data-free methods, and learned ones that train on --retrain-data; the calibrated ones
    # need calibration data this command has no flag for.
    p.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=[*names(family="data_free"), *names(family="learned")],
        help=f"learned methods ({', '.join(names(family='learned'))}) train with "
        "--retrain-data for --epochs, then end at exactly --sparsity",
    )
    p.add_argument("--seed", type=int, help="seed of --method random")
    p.add_argument("--scope", default=PruneSpec.scope, choices=["global", "layerwise"])
    p.add_argument("--include", action="append", default=[], metavar="GLOB")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    p.add_argument("--override", action="append", default=[], metavar="GLOB=FRACTION")
    # The contract's defaults, as the engine's view of `latency` holds them.
    latency = LatencySpec()
    p.add_argument("--batch-sizes", default=",".join(map(str, latency.batch_sizes)), metavar="N,M")
    p.add_argument("--threads", type=int, default=latency.threads)
    p.add_argument("--warmup", type=int, default=latency.warmup)
    p.add_argument(
        "--iterations", type=int, default=latency.iterations, help="minimum timed iterations"
    )
    p.add_argument("--latency-budget", type=float, default=latency.budget_s, metavar="SECONDS")
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=1,3,32,32")
    p.add_argument("--format", choices=["onnx", "torchscript"])
    p.add_argument("-o", "--output", type=Path, required=True, help="output directory")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_training_options(p)
