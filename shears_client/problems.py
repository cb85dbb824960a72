"""A server's problem+json, told in the words of the command line: the API names the field it
refuses (`spec.calibration`), a person typed a flag (`--data`), so each field is named by the
flag that set it, once per error."""

import argparse
import sys
from typing import Any

from shears_client.http import ApiError
from shears_flags import given

# API field (a prefix of the problem's `field`) -> the `submit` flags that set it, by argparse
# dest, first given wins. Longer prefixes come first: `spec.retrain.lr` before `spec.retrain`.
_FLAGS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("spec.sparsity", (("sparsity", "--sparsity"),)),
    ("spec.method", (("method", "--method"),)),
    ("spec.scope", (("scope", "--scope"),)),
    ("spec.layers.exclude", (("exclude", "--exclude"),)),
    ("spec.layers", (("exclude", "--exclude"),)),
    ("spec.outputs", (("outputs", "--outputs"),)),
    ("spec.input_shapes", (("input_shape", "--input-shape"),)),
    ("spec.schedule", (("schedule", "--schedule"),)),
    ("spec.calibration", (("data", "--data"),)),
    ("spec.retrain.epochs", (("epochs", "--epochs"),)),
    ("spec.retrain.loss", (("loss", "--loss"),)),
    ("spec.retrain.lr", (("lr", "--lr"),)),
    ("spec.retrain.validation_split", (("validation_split", "--validation-split"),)),
    ("spec.retrain", (("data", "--data"),)),
    ("spec.evaluation.metric", (("evaluate", "--evaluate"),)),
    ("spec.evaluation", (("eval_data", "--eval-data"), ("data", "--data"))),
    ("callback_url", (("callback_url", "--callback-url"),)),
    ("callback_secret", (("callback_secret", "--callback-secret"),)),
    ("format", (("format", "--format"),)),
    ("Idempotency-Key", (("idempotency_key", "--idempotency-key"),)),
    ("status", (("status", "--status"),)),
    ("limit", (("limit", "--limit"),)),
)


def print_problem(exc: ApiError, args: argparse.Namespace) -> None:
    """One line per offending field, named as the user gave it; the detail when none."""
    errors = exc.problem.get("errors") or []
    if not errors:
        print(f"error: {exc}", file=sys.stderr)
        return
    for error in errors:
        name = flag_for(str(error.get("field", "")), args, exc.upload_flag)
        print(f"error: {name}: {error.get('message')}", file=sys.stderr)


def flag_for(field: str, args: argparse.Namespace, upload_flag: str | None = None) -> str:
    """The flag (or file) behind an API field; the field itself, with the --spec file that
    set it, where no flag did."""
    if field in ("file", "model_id"):  # the file being uploaded, or the model uploaded
        if upload_flag:
            return f"{upload_flag} {_value(args, upload_flag)}"
        return str(getattr(args, "model", field))
    for prefix, flags in _FLAGS:
        if field == prefix or field.startswith((prefix + ".", prefix + "[")):
            for dest, flag in flags:
                if _given(args, dest):
                    return flag
            if getattr(args, "spec", None) is None:
                return flags[0][1]  # not given: the flag that would set it
            break
    spec_file = getattr(args, "spec", None)
    return f"{field} in {spec_file}" if spec_file and field.startswith("spec.") else field


def _given(args: argparse.Namespace, dest: str) -> bool:
    if dest in given(args):  # the shared flags (shears_flags), typed on the command line
        return True
    value: Any = getattr(args, dest, None)
    return value not in (None, False, [])


def _value(args: argparse.Namespace, flag: str) -> str:
    return str(getattr(args, flag.removeprefix("--").replace("-", "_"), ""))
