"""Flags that `shears prune` (the engine on local files) and `shears submit` (a server) both
take: defined once here, so a flag has one name, one default and one meaning in both.

Standard library only: the engine and the HTTP client each import it without the other.
"""

import argparse

__all__ = ["add_evaluation_data", "add_retraining_options", "given"]

_GIVEN = "_flags_given"


class _Given(argparse.Action):
    """Stores the value and notes that it came from the command line: `submit --spec FILE`
    keeps the file's value unless the flag is given, and a default is not "given"."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, _GIVEN, {*getattr(namespace, _GIVEN, ()), self.dest})


def given(args: argparse.Namespace) -> frozenset[str]:
    """The `dest` names of the shared flags set on the command line."""
    return frozenset(getattr(args, _GIVEN, ()))


def add_retraining_options(
    group: argparse._ActionsContainer,
    *,
    lr: float | None = None,
    validation_split: float | None = None,
) -> None:
    """`--lr` and `--validation-split`. The defaults are the spec's (`retrain` in the contract),
    which this package cannot import: `shears prune` passes them, read from the contract;
    `shears submit` passes none, and a flag left out leaves the field to its `--spec` file or
    to the service, which applies the same defaults."""
    group.add_argument(
        "--lr",
        type=float,
        default=lr,
        action=_Given,
        help=f"learning rate of retraining ({_default(lr)})",
    )
    group.add_argument(
        "--validation-split",
        type=float,
        default=validation_split,
        action=_Given,
        metavar="FRACTION",
        help="hold out the last FRACTION of the training samples from training and score "
        f"them after every epoch ({_default(validation_split)})",
    )


def _default(value: float | None) -> str:
    # argparse expands %(default)s in help; a literal percent would need doubling.
    return "default: the service's" if value is None else "default %(default)s"


def add_evaluation_data(group: argparse._ActionsContainer, metavar: str = "FILE.npz") -> None:
    group.add_argument(
        "--eval-data",
        action=_Given,
        metavar=metavar,
        help="held-out data (arrays named as the model's inputs, plus `labels` or `targets`) "
        "on which the metric of the dense and the pruned model is measured; data the job "
        "also trained or calibrated on would flatter the pruned model",
    )
