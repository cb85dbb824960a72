"""Every pruning method the spec may name, declared once: its name, its family, what a job
naming it needs, which granularities and schedules it takes, and its options (type, default,
bounds, description) with the description and example the OpenAPI document shows.

The contract builds its `method` union from these entries (`api_schemas/methods.py`), so an
entry is the one definition of a method's options and their defaults; the API's validators,
createJob's checks, the `shears submit` client, the `shears prune` CLI and the engine's
registries all read them instead of keeping their own lists, and the engine checks at import
that its classes match them name for name, family by family. Standard library only: the API
imports it without torch, the client without pydantic.

Adding a method is one entry below plus its engine file (docs/architecture.md, "Add a
pruning method").
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Required, TypedDict, Unpack

from shears_methods.options import DUAL_LR, FINETUNE_FRACTION, Option, OptionValue, rate

__all__ = [
    "ALL_GRANULARITIES",
    "ALL_SCHEDULES",
    "METHODS",
    "Family",
    "MethodInfo",
    "Need",
    "Option",
    "OptionValue",
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
    summary: str  # one line: the CLI's help
    # The contract's member of the `method` union: its schema's title, its description, its
    # options (besides the tag `name`) and the options its OpenAPI example shows, at their
    # defaults.
    title: str
    doc: str
    options: tuple[Option, ...] = ()
    example: tuple[str, ...] = ()

    def defaults(self) -> dict[str, OptionValue]:
        """Each option's default: what a spec that names the method alone runs with."""
        return {option.name: option.default for option in self.options}


class _Contract(TypedDict, total=False):
    """What an entry says of its member of the contract's `method` union (`doc` required)."""

    doc: Required[str]
    options: tuple[Option, ...]
    example: tuple[str, ...]
    title: str  # only where the name in CamelCase + "Method" is not it ("SparseGPTMethod")


def _entry(
    name: str,
    family: Family,
    needs: frozenset[Need],
    granularities: tuple[Granularity, ...],
    schedules: tuple[Schedule, ...],
    summary: str,
    contract: _Contract,
) -> MethodInfo:
    title = contract.get("title") or name.title().replace("_", "") + "Method"
    return MethodInfo(
        name,
        family,
        needs,
        granularities,
        schedules,
        summary,
        title,
        contract["doc"],
        contract.get("options", ()),
        contract.get("example", ()),
    )


def _data_free(name: str, summary: str, **contract: Unpack[_Contract]) -> MethodInfo:
    return _entry(
        name, "data_free", frozenset(), ALL_GRANULARITIES, ALL_SCHEDULES, summary, contract
    )


def _calibrated(
    name: str,
    summary: str,
    granularities: tuple[Granularity, ...] = ("unstructured", "n:m"),
    **contract: Unpack[_Contract],
) -> MethodInfo:
    needs: frozenset[Need] = frozenset({"calibration"})
    return _entry(name, "calibrated", needs, granularities, ALL_SCHEDULES, summary, contract)


def _learned(
    name: str,
    summary: str,
    schedules: tuple[Schedule, ...] = ("one_shot",),
    **contract: Unpack[_Contract],
) -> MethodInfo:
    # Learned methods set their own sparsity over training, weight by weight.
    needs: frozenset[Need] = frozenset({"retrain"})
    return _entry(name, "learned", needs, ("unstructured",), schedules, summary, contract)


def _by_name(*entries: MethodInfo) -> dict[str, MethodInfo]:
    return {entry.name: entry for entry in entries}


# In this order in the API's `method` union, the OpenAPI document and the CLI's help. `doc` is
# the member's description in the OpenAPI document, line breaks included.
METHODS: dict[str, MethodInfo] = _by_name(
    _data_free(
        "magnitude",
        "zero the weights of smallest absolute value",
        doc="Zero the weights of smallest absolute value (Han et al. 2015).",
    ),
    _data_free(
        "random",
        "zero weights uniformly at random (the baseline)",
        doc="Zero weights uniformly at random: the baseline any method must beat.",
        options=(Option("seed", int, 0, "Seed of the random choice.", ge=0),),
        example=("seed",),
    ),
    _calibrated(
        "obd",
        "Optimal Brain Damage: Hessian-diagonal saliency",
        doc="""\
        Optimal Brain Damage (LeCun et al. 1989): saliency h_ii * w_i^2 / 2, with the Hessian
        diagonal from the empirical Fisher (squared per-sample gradients) or Hutchinson's
        estimator. Needs `calibration`.""",
        options=(
            Option(
                "hessian",
                ("fisher", "hutchinson"),
                "fisher",
                "How the Hessian diagonal is estimated.",
            ),
            Option(
                "damp",
                float,
                1.0,
                "Dampening: h_ii + damp * mean(h) per layer; steadies a noisy estimate.",
                ge=0.0,
                le=1000.0,
            ),
        ),
        example=("hessian", "damp"),
    ),
    _calibrated(
        "wanda",
        "|weight| times the norm of its input activations",
        doc="""\
        Wanda (Sun et al. 2023): score |w_ij| * ||x_j||_2, compared within each output row, so
        every row (and layer) is pruned to the same fraction whatever `scope` says; with
        `granularity: n:m`, within every m consecutive inputs of a row. Needs `calibration`.""",
    ),
    _calibrated(
        "sparsegpt",
        "layerwise OBS with weight update",
        title="SparseGPTMethod",
        doc="""\
        SparseGPT (Frantar & Alistarh 2023): layerwise OBS with weight update, layers in order,
        each layer to its own fraction (layerwise whatever `scope` says); with `granularity: n:m`,
        each group's mask is chosen as the sweep reaches it. Needs `calibration`.""",
        options=(
            Option("blocksize", int, 128, "Columns per lazy block.", ge=1, le=4096),
            Option(
                "percdamp",
                float,
                0.01,
                "Dampening, a fraction of mean(diag(H)).",
                gt=0.0,
                le=1.0,
            ),
        ),
        example=("blocksize", "percdamp"),
    ),
    _calibrated(
        "taylor",
        "first-order Taylor importance |g * w|",
        ALL_GRANULARITIES,
        doc="""\
        First-order Taylor importance (Molchanov et al. 2017, 2019): removing weights changes
        the loss by about -sum(g * w). With `granularity: channel` a channel's score is
        |sum over its weights of g * w|; unstructured, each weight's |g * w|; both accumulated over
        the calibration samples, one gradient per sample. The loss is cross-entropy with the
        dataset's `labels` (MSE with float `targets`), or with the model's own predictions when
        it has neither (the report says which). Needs `calibration`.""",
    ),
    _learned(
        "l0",
        "L0 regularisation with hard-concrete gates",
        doc="""\
        L0 regularisation with hard-concrete gates per weight (Louizos et al. 2018) at a
        controlled density: the expected density is held to 1 - `sparsity` by a Lagrange multiplier
        updated by dual ascent (Gallego-Posada et al. 2022), so no penalty weight is asked for.
        Gates become deterministic at the end and the weights are projected onto exactly
        `sparsity` by the gates' log alpha. Needs `retrain`.""",
        options=(
            rate("Adam/SGD step of the gates' log alpha; null: 0.1 (more for short jobs)."),
            DUAL_LR,
            Option(
                "init_log_alpha",
                float,
                2.0,
                "Initial log alpha of every gate (open).",
                ge=-10.0,
                le=10.0,
            ),
            FINETUNE_FRACTION,
        ),
    ),
    _learned(
        "variational_dropout",
        "sparse variational dropout",
        doc="""\
        Sparse variational dropout (Molchanov et al. 2017): a learned log sigma^2 per weight,
        Molchanov's KL approximation weighted by a Lagrange multiplier (dual ascent to the target
        density); weights with log alpha above `threshold` are dropped. The noise is sampled by the
        local reparameterisation on Linear (Gemm, MatMul) and Conv layers of ONNX graphs, per
        weight once per mini-batch in compiled TorchScript (the report's `noise` says which).
        Projected onto exactly `sparsity` by -log alpha. Needs `retrain`.""",
        options=(
            rate("Step of log sigma^2; null: 0.1 (more for short jobs)."),
            DUAL_LR,
            Option(
                "threshold",
                float,
                3.0,
                "log alpha above which a weight is dropped.",
                ge=0.0,
                le=10.0,
            ),
            Option(
                "init_log_alpha",
                float,
                -4.0,
                "Initial log alpha of every weight.",
                ge=-10.0,
                le=0.0,
            ),
            FINETUNE_FRACTION,
        ),
        example=("threshold",),
    ),
    _learned(
        "str",
        "soft threshold reparameterisation",
        title="SoftThresholdMethod",
        doc="""\
        Soft threshold reparameterisation, STR (Kusupati et al. 2020): every layer computes with
        sign(w) * relu(|w| - g(s)), its threshold g(s) = sigmoid(s) * max|w| learned, so layers find
        their own sparsity; the push on s is a Lagrange multiplier (dual ascent to the target
        density) instead of the paper's weight decay. Projected onto exactly `sparsity` by
        |w| - g(s). Needs `retrain`.""",
        options=(
            rate("Step of the thresholds' s; null: 0.02 (more for short jobs)."),
            DUAL_LR,
            Option(
                "init_s",
                float,
                -5.0,
                "Initial s of every layer (near dense).",
                ge=-20.0,
                le=0.0,
            ),
            FINETUNE_FRACTION,
        ),
    ),
    _learned(
        "movement",
        "movement pruning",
        ("one_shot", "gradual"),
        doc="""\
        Movement pruning (Sanh et al. 2020), hard: scores accumulate -w * dL/dw during
        fine-tuning and each step keeps the top-scoring weights, their share following the cubic
        schedule (the `gradual` schedule's exponent, initial sparsity and fraction when given).
        `scope` says whether scores compete globally or per layer. Needs `retrain`.""",
        options=(FINETUNE_FRACTION,),
    ),
)


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
