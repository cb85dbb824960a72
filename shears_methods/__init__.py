"""Every pruning method the spec may name, declared once: its name, its family, what a job
naming it needs, and which granularities and schedules it takes.

The API's validators, createJob's checks, the `shears submit` client and the engine's
registries all read these entries instead of keeping their own lists; the engine checks at
import that its classes match them name for name, and the API that its `method` union does.
Standard library only: the API imports it without torch, the client without pydantic.

Adding a method is one entry below plus its engine file (docs/architecture.md, "Add a
pruning method").
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ALL_GRANULARITIES",
    "ALL_SCHEDULES",
    "METHODS",
    "Family",
    "MethodInfo",
    "Need",
    "check_names",
    "method_info",
    "names",
]

# data_free: scores from the weights alone; calibrated: reads calibration data through the
# model; learned: learns its mask while training on `retrain`'s dataset.
Family = Literal["data_free", "calibrated", "learned"]
# What a spec naming the method must also hold. No method needs labelled data as such: taylor
# uses a dataset's labels when present (else the model's own predictions), and a training
# loss's labels are checked by `retrain.loss`, whatever the method.
Need = Literal["calibration", "retrain"]
Granularity = Literal["unstructured", "n:m", "channel"]
Schedule = Literal["one_shot", "iterative", "gradual"]

ALL_GRANULARITIES: tuple[Granularity, ...] = ("unstructured", "n:m", "channel")
ALL_SCHEDULES: tuple[Schedule, ...] = ("one_shot", "iterative", "gradual")


@dataclass(frozen=True)
class MethodInfo:
    name: str
    family: Family
    needs: frozenset[Need]
    granularities: tuple[Granularity, ...]
    schedules: tuple[Schedule, ...]
    summary: str


def _data_free(name: str, summary: str) -> MethodInfo:
    return MethodInfo(name, "data_free", frozenset(), ALL_GRANULARITIES, ALL_SCHEDULES, summary)


def _calibrated(
    name: str, summary: str, granularities: tuple[Granularity, ...] = ("unstructured", "n:m")
) -> MethodInfo:
    return MethodInfo(
        name, "calibrated", frozenset({"calibration"}), granularities, ALL_SCHEDULES, summary
    )


def _learned(
    name: str, summary: str, schedules: tuple[Schedule, ...] = ("one_shot",)
) -> MethodInfo:
    # Learned methods set their own sparsity over training, weight by weight.
    return MethodInfo(
        name, "learned", frozenset({"retrain"}), ("unstructured",), schedules, summary
    )


# In this order in the API's `method` union, the OpenAPI document and the CLI's help.
METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        _data_free("magnitude", "zero the weights of smallest absolute value"),
        _data_free("random", "zero weights uniformly at random (the baseline)"),
        _calibrated("obd", "Optimal Brain Damage: Hessian-diagonal saliency"),
        _calibrated("wanda", "|weight| times the norm of its input activations"),
        _calibrated("sparsegpt", "layerwise OBS with weight update"),
        _calibrated("taylor", "first-order Taylor importance |g * w|", ALL_GRANULARITIES),
        _learned("l0", "L0 regularisation with hard-concrete gates"),
        _learned("variational_dropout", "sparse variational dropout"),
        _learned("str", "soft threshold reparameterisation"),
        _learned("movement", "movement pruning", ("one_shot", "gradual")),
    )
}


def method_info(name: str) -> MethodInfo | None:
    """The entry for `name`, or None for a name no method has."""
    return METHODS.get(name)


def names(*, family: Family | None = None, need: Need | None = None) -> tuple[str, ...]:
    """Method names in registry order, those of one family or with one need when asked."""
    return tuple(
        m.name
        for m in METHODS.values()
        if (family is None or m.family == family) and (need is None or need in m.needs)
    )


def check_names(where: str, registered: Iterable[str], *, family: Family | None = None) -> None:
    """Raise at import when a registry of classes (`where`) names other methods than the
    declared ones: a method added to one place and not the other fails at once."""
    found = set(registered)
    declared = set(names(family=family))
    if found != declared:
        raise RuntimeError(
            f"{where} does not match shears_methods: missing {sorted(declared - found)}, "
            f"undeclared {sorted(found - declared)}"
        )
