"""A method's options in plain data: the contract (`api_schemas.spec`) turns each `Option` into
a validated field of the method's member of the `method` union, and the engine's method is
built with the validated values. Standard library only, like the rest of `shears_methods`."""

from dataclasses import dataclass

OptionValue = int | float | str | None


@dataclass(frozen=True)
class Option:
    """One option: its type (`int`, `float`, or a tuple of the strings it may be), its default
    (None: the option may be null, meaning "the method's own default", which the engine
    picks), its bounds and the description shown in the OpenAPI document."""

    name: str
    kind: type[int] | type[float] | tuple[str, ...]
    default: OptionValue
    description: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    @property
    def nullable(self) -> bool:
        return self.default is None


# --- Options several learned methods share (issue 16). ---

FINETUNE_FRACTION = Option(
    "finetune_fraction",
    float,
    0.25,
    "Share of `retrain.epochs` (rounded; at least one epoch learns) spent after the "
    "projection onto the exact sparsity, fine-tuning that mask held fixed.",
    ge=0.0,
    lt=1.0,
)
DUAL_LR = Option(
    "dual_lr",
    float,
    None,
    "Step of the dual ascent on the Lagrange multiplier (controlled sparsity, "
    "Gallego-Posada et al. 2022); null: the method's default, larger for jobs under 100 steps.",
    gt=0.0,
    le=1e6,
)


def rate(description: str) -> Option:
    """The step of a learned method's own parameters; null: the method's default."""
    return Option("lr", float, None, description, gt=0.0, le=10.0)
