"""``shears prune`` options for retraining and evaluation: local ``.npz`` files stand in for
dataset ids (``local_retrain``, ``local_evaluation``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pruning.spec_values import default_of
from pruning.training.spec import (
    LOSSES,
    LR_SCHEDULES,
    METRICS,
    OPTIMIZERS,
    SCHEDULES,
    EvaluationSpec,
    RetrainSpec,
    ScheduleSpec,
)
from shears_flags import add_evaluation_data, add_retraining_options

RETRAIN_ID = "local_retrain"
EVALUATION_ID = "local_evaluation"


def add_training_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("retraining and evaluation")
    group.add_argument("--retrain-data", type=Path, metavar="FILE.npz", help="train on this data")
    # Defaults are the contract's (api_schemas.spec), read through the engine's views.
    schedule = ScheduleSpec()
    group.add_argument("--schedule", choices=SCHEDULES, default=schedule.kind)
    group.add_argument(
        "--rounds", type=int, default=schedule.rounds, help="iterative: pruning rounds"
    )
    group.add_argument("--steps", type=int, default=schedule.steps, help="gradual: pruning events")
    group.add_argument("--epochs", type=int, default=default_of(RetrainSpec, "epochs"))
    # --lr, --validation-split: shared with `shears submit`, which leaves defaults to the API.
    add_retraining_options(
        group,
        lr=default_of(RetrainSpec, "lr"),
        validation_split=default_of(RetrainSpec, "validation_split"),
    )
    group.add_argument("--batch-size", type=int, default=default_of(RetrainSpec, "batch_size"))
    group.add_argument(
        "--optimizer", choices=OPTIMIZERS, default=default_of(RetrainSpec, "optimizer")
    )
    group.add_argument("--loss", choices=LOSSES, default=default_of(RetrainSpec, "loss"))
    group.add_argument(
        "--lr-schedule", choices=LR_SCHEDULES, default=default_of(RetrainSpec, "lr_schedule")
    )
    group.add_argument("--regrow", action="store_true")
    add_evaluation_data(group)
    group.add_argument("--metric", choices=METRICS, default=default_of(EvaluationSpec, "metric"))


def training_fields(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Path]]:
    """The spec's schedule, retrain and evaluation fields, and the datasets they name."""
    fields: dict[str, Any] = {"schedule": _schedule(args)}
    datasets: dict[str, Path] = {}
    if args.retrain_data is not None:
        datasets[RETRAIN_ID] = args.retrain_data
        fields["retrain"] = {
            "dataset_id": RETRAIN_ID,
            "epochs": args.epochs,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "optimizer": args.optimizer,
            "loss": args.loss,
            "lr_schedule": args.lr_schedule,
            "validation_split": args.validation_split,
            "regrow": args.regrow,
        }
    if args.eval_data is not None:
        datasets[EVALUATION_ID] = Path(args.eval_data)
        fields["evaluation"] = {"dataset_id": EVALUATION_ID, "metric": args.metric}
    return fields, datasets


def _schedule(args: argparse.Namespace) -> dict[str, Any]:
    if args.schedule == "iterative":
        return {"kind": "iterative", "rounds": args.rounds}
    if args.schedule == "gradual":
        return {"kind": "gradual", "steps": args.steps}
    return {"kind": "one_shot"}


def metric_line(report: dict[str, Any]) -> list[str]:
    metric = (report.get("quality") or {}).get("metric")
    lines = []
    if report.get("training"):
        t = report["training"]
        lines.append(f"retrained {t['epochs']} epochs ({t['steps']} steps) in {t['time_s']:.1f} s")
    if metric:
        lines.append(
            f"{metric['name']} on {metric['samples']} samples: dense {metric['dense']:.4f}, "
            f"pruned {metric['pruned']:.4f} ({metric['runtime']})"
        )
        fid = metric.get("fidelity") or {}
        if fid.get("output_cosine") is not None:
            agreement = fid.get("top1_agreement")
            lines.append(
                f"fidelity on those samples: cosine {fid['output_cosine']:.4g}"
                + (f", top-1 agreement {agreement:.3f}" if agreement is not None else "")
            )
    return lines
