"""`shears submit | jobs | report`: the service from a shell or a CI step.

Exit codes, so a pipeline can branch on them: 0 done (or submitted, without --wait), 1 the job
failed or was cancelled, 2 the server refused the request (a 4xx: it says why), 3 the server
could not be reached or failed (5xx).
"""

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from shears_client.http import ApiError, ShearsClient, iter_lines
from shears_client.problems import print_problem
from shears_flags import add_evaluation_data, add_retraining_options, given
from shears_methods import names

DONE, JOB_FAILED, REFUSED, UNREACHABLE = 0, 1, 2, 3
# Methods that read calibration data; `--data` feeds them (the server names any other need).
DATA_METHODS = frozenset(names(need="calibration"))
# Learned-sparsity methods train their masks: --data becomes the training dataset.
LEARNED_METHODS = frozenset(names(need="retrain"))
DEFAULT_URL = "http://127.0.0.1:8000"
_CALIBRATED = "|".join(names(need="calibration"))


class UsageError(Exception):
    """Flags that do not make a request; exit code 2 like argparse's own errors."""


def submit(argv: list[str]) -> int:
    args = submit_parser().parse_args(argv)
    return _guarded(args, lambda client: _submit(client, args))


def jobs(argv: list[str]) -> int:
    parser = _base_parser("shears jobs", "list recent jobs, newest first")
    parser.add_argument(
        "--status", choices=["queued", "running", "succeeded", "failed", "cancelled"]
    )
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args(argv)

    def run(client: ShearsClient) -> int:
        for job in client.list_jobs(args.status, args.limit):
            print(*iter_lines(job))
        return DONE

    return _guarded(args, run)


def report(argv: list[str]) -> int:
    parser = _base_parser("shears report", "print a job's report (JSON), or save its page")
    parser.add_argument("job_id")
    parser.add_argument("--html", type=Path, help="save the report page (with plots) here")
    args = parser.parse_args(argv)

    def run(client: ShearsClient) -> int:
        if args.html:
            client.save_report_page(args.job_id, args.html)
            print(f"report page saved to {args.html}")
        else:
            print(json.dumps(client.report(args.job_id), indent=2))
        return DONE

    return _guarded(args, run)


def _submit(client: ShearsClient, args: argparse.Namespace) -> int:
    spec = _spec(args)
    _check_data_flags(spec, args)
    callback = _callback(args)
    model = client.upload_model(args.model, args.format)
    if model["status"] != "ready":
        print(f"error: {args.model}: {model.get('error')}", file=sys.stderr)
        return REFUSED
    if args.data is not None:
        _use_data(spec, args, _dataset_id(client, args.data, "--data"))
    if args.eval_data is not None:
        _use_eval_data(spec, args, _dataset_id(client, args.eval_data, "--eval-data"))
    job = client.create_job(model["id"], spec, args.idempotency_key, callback)
    print(f"job {job['id']} {job['status']} (model {model['id']})", file=sys.stderr)
    if not args.wait:
        print(job["id"])
        return DONE
    job = _follow(client, job["id"], quiet=args.quiet)
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        print(
            f"job {job['id']} {job['status']}: {error.get('code')}: {error.get('message')}",
            file=sys.stderr,
        )
        return JOB_FAILED
    out = args.output or Path(f"shears-{job['id']}")
    _fetch(client, job, out)
    print(out)
    return DONE


def _callback(args: argparse.Namespace) -> dict[str, str] | None:
    if args.callback_url is None:
        return None
    if not args.callback_secret:
        raise UsageError("--callback-url needs --callback-secret (or SHEARS_CALLBACK_SECRET)")
    return {"callback_url": args.callback_url, "callback_secret": args.callback_secret}


def _check_data_flags(spec: dict[str, Any], args: argparse.Namespace) -> None:
    """Refuse, before anything is uploaded, flags whose data is missing or would go unused."""
    if args.data is None and (args.epochs or (args.evaluate and args.eval_data is None)):
        raise UsageError(
            "--epochs trains and --evaluate measures on --data (or --eval-data); give --data"
        )
    if args.data is not None and not _wants_data(spec, args):
        raise UsageError(
            f"--data would go unused: it feeds calibration (--method {_CALIBRATED}), "
            "retraining (--epochs, --schedule, --loss) or --evaluate without --eval-data"
        )
    unused = sorted(f"--{d.replace('_', '-')}" for d in {"lr", "validation_split"} & given(args))
    if unused and not _retrains(spec, args):
        raise UsageError(
            f"{', '.join(unused)} would go unused: they set retraining "
            "(--epochs, --schedule iterative|gradual, --loss)"
        )


def _dataset_id(client: ShearsClient, data: str, flag: str) -> str:
    """An uploaded dataset's id as given, or the id of the .npz file uploaded now."""
    path = Path(data)
    if path.is_file():
        try:
            dataset = client.upload_dataset(path)
        except ApiError as exc:
            exc.upload_flag = flag
            raise
        print(f"dataset {dataset['id']} uploaded ({dataset['samples']} samples)", file=sys.stderr)
        return str(dataset["id"])
    if data.startswith("ds_"):
        return data
    raise UsageError(f"{flag} {data!r} is neither a file nor a dataset id (ds_…)")


def _wants_data(spec: dict[str, Any], args: argparse.Namespace) -> bool:
    method = (spec.get("method") or {}).get("name", "magnitude")
    evaluation = isinstance(spec.get("evaluation"), dict) or args.evaluate
    return bool(
        method in DATA_METHODS
        or isinstance(spec.get("calibration"), dict)
        or _retrains(spec, args)
        or (evaluation and args.eval_data is None)
    )


def _retrains(spec: dict[str, Any], args: argparse.Namespace) -> bool:
    asked = args.epochs or args.loss or args.schedule in ("iterative", "gradual")
    learned = (spec.get("method") or {}).get("name") in LEARNED_METHODS
    return bool(asked or learned or isinstance(spec.get("retrain"), dict))


def _use_data(spec: dict[str, Any], args: argparse.Namespace, dataset_id: str) -> None:
    """Point every block that reads data at the dataset: calibration for the methods that
    need it, training when asked to retrain, evaluation when asked to measure a metric."""
    method = (spec.get("method") or {}).get("name", "magnitude")
    if method in DATA_METHODS or isinstance(spec.get("calibration"), dict):
        spec["calibration"] = {**(spec.get("calibration") or {}), "dataset_id": dataset_id}
    if _retrains(spec, args):
        block = {**(spec.get("retrain") or {}), "dataset_id": dataset_id}
        if args.epochs:
            block["epochs"] = args.epochs
        if args.loss:
            block["loss"] = args.loss
        # A flag given wins over the --spec file; left out, the file's value or the
        # service's default (the contract's) applies.
        for name in ("lr", "validation_split"):
            if name in given(args):
                block[name] = getattr(args, name)
        spec["retrain"] = block
    if args.eval_data is None and (args.evaluate or isinstance(spec.get("evaluation"), dict)):
        block = {**(spec.get("evaluation") or {}), "dataset_id": dataset_id}
        if args.evaluate:
            block["metric"] = args.evaluate
        spec["evaluation"] = block
        print(
            "note: the metric is measured on --data, which the job also trains or calibrates "
            "on, so it flatters the pruned model; give held-out data with --eval-data",
            file=sys.stderr,
        )


def _use_eval_data(spec: dict[str, Any], args: argparse.Namespace, dataset_id: str) -> None:
    block = {**(spec.get("evaluation") or {}), "dataset_id": dataset_id}
    if args.evaluate or "metric" not in block:
        block["metric"] = args.evaluate or "accuracy"
    spec["evaluation"] = block


def _follow(client: ShearsClient, job_id: str, quiet: bool) -> dict[str, Any]:
    bar_format = "{desc:<10}{percentage:3.0f}%|{bar}| {elapsed}{postfix}"
    with tqdm(total=100, file=sys.stderr, disable=quiet, bar_format=bar_format) as bar:

        def show(event: dict[str, Any]) -> None:
            bar.set_description(event["stage"])
            data = event.get("data") or {}
            if "loss" in data and "epoch" in data:  # retraining: show how it goes
                bar.set_postfix_str(
                    f"epoch {data['epoch']}/{data.get('epochs', '?')} loss {data['loss']:.4g} "
                    f"sparsity {data.get('sparsity', 0):.3f}",
                    refresh=False,
                )
            bar.update(max(0, round(event["fraction"] * 100) - bar.n))

        return client.wait(job_id, show)


def _fetch(client: ShearsClient, job: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for artifact in job["artifacts"]:
        # Names come from the server's artifact list, which the worker restricts to
        # lowercase identifiers; never a path.
        name = Path(artifact["name"]).name
        suffix = {
            "onnx": ".onnx",
            "torchscript": ".pt",
            "json": ".json",
            "npz": ".npz",
            "html": ".html",
        }.get(artifact["format"], "")
        client.download(job["id"], artifact["name"], out / f"{name}{suffix}")


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(args.spec.read_text()) if args.spec else {}
    if args.sparsity is not None:
        spec["sparsity"] = args.sparsity
    if "sparsity" not in spec:
        raise UsageError("give --sparsity or a --spec file with `sparsity`")
    if args.method:
        spec["method"] = {"name": args.method}
    if args.scope:
        spec["scope"] = args.scope
    if args.exclude:
        spec.setdefault("layers", {})["exclude"] = args.exclude
    if args.outputs:
        spec["outputs"] = args.outputs.split(",")
    if args.input_shape:
        spec["input_shapes"] = dict(_shape(text) for text in args.input_shape)
    if args.schedule:
        spec["schedule"] = {"kind": args.schedule}
    return spec


def _shape(text: str) -> tuple[str, list[int]]:
    name, _, dims = text.partition("=")
    try:
        return name, [int(d) for d in dims.split(",")]
    except ValueError:
        raise UsageError(f"--input-shape wants NAME=1,3,32,32, not {text!r}") from None


def _guarded(args: argparse.Namespace, run: Callable[[ShearsClient], int]) -> int:
    client = ShearsClient(args.server, args.api_key)
    try:
        return run(client)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return REFUSED
    except ApiError as exc:
        print_problem(exc, args)
        return REFUSED if exc.status < 500 else UNREACHABLE
    except httpx.TransportError as exc:
        print(f"error: cannot reach {args.server}: {exc}", file=sys.stderr)
        return UNREACHABLE
    finally:
        client.close()


def _base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--server",
        default=os.environ.get("SHEARS_URL", DEFAULT_URL),
        help=f"API base URL (env SHEARS_URL, default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("SHEARS_API_KEY"),
        help="bearer key (env SHEARS_API_KEY)",
    )
    return parser


def submit_parser() -> argparse.ArgumentParser:
    p = _base_parser("shears submit", "upload a model, prune it on the server, fetch results")
    p.add_argument("model", type=Path, help="an ONNX or TorchScript file")
    p.add_argument("--sparsity", type=float)
    p.add_argument(
        "--method",
        help=f"{', '.join(names())} (default magnitude); --data is the calibration data of "
        f"{', '.join(names(need='calibration'))} and the training data of "
        f"{', '.join(names(need='retrain'))}",
    )
    p.add_argument("--scope", choices=["global", "layerwise"])
    p.add_argument("--exclude", action="append", help="glob of tensors to leave dense")
    p.add_argument("--outputs", help="comma-separated, e.g. model,sparse_npz")
    p.add_argument("--input-shape", action="append", help="NAME=1,3,32,32 (TorchScript)")
    p.add_argument(
        "--data",
        help="an .npz (arrays named as the model's inputs, plus `labels`) or a dataset id: "
        "calibration data for loss-based methods, training data with --epochs or --schedule, "
        "and evaluation data with --evaluate unless --eval-data gives held-out data",
    )
    p.add_argument("--schedule", choices=["one_shot", "iterative", "gradual"])
    p.add_argument("--epochs", type=int, help="retrain on --data for this many epochs")
    p.add_argument(
        "--loss",
        choices=["cross_entropy+distill", "cross_entropy", "mse", "distill"],
        help="retrain loss (default: the service's, cross_entropy+distill)",
    )
    add_retraining_options(p)
    p.add_argument(
        "--evaluate",
        choices=["accuracy", "mse"],
        help="metric on --eval-data (default accuracy there), or else on --data",
    )
    add_evaluation_data(p, metavar="FILE.npz|ds_ID")
    p.add_argument("--callback-url", help="POSTed the job, signed, when it ends (webhook)")
    p.add_argument(
        "--callback-secret",
        default=os.environ.get("SHEARS_CALLBACK_SECRET"),
        help="whsec_… signing secret of the webhook (env SHEARS_CALLBACK_SECRET)",
    )
    p.add_argument("--spec", type=Path, help="a PruneSpec JSON file; flags override it")
    p.add_argument("--format", choices=["onnx", "torchscript"], help="default: detected")
    p.add_argument("--idempotency-key", help="resubmitting with the same key is safe")
    p.add_argument("--wait", action="store_true", help="follow the job and fetch results")
    p.add_argument("-o", "--output", type=Path, help="where --wait saves artifacts")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p
