"""The engine's exceptions: one hierarchy, each with a stable ``code``.

    EngineError
    ├── InvalidModel            invalid_model          the file is not a usable model
    ├── UnsupportedModel        unsupported_model      a valid model Shears cannot handle
    │   └── UnsupportedOperator unsupported_operator   ... because of one operator
    ├── InvalidSpec             invalid_spec           the PruneSpec is wrong
    │   ├── Unsupported         unsupported            ... asks for something not implemented
    │   └── LayerPatternUnmatched layer_pattern_unmatched
    └── DataMismatch            data_mismatch          inputs do not fit the model

Messages say what the user must change. Third-party exceptions (protobuf, ONNX Runtime,
torch) are translated where they are raised: in the model adapters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar


class EngineError(Exception):
    """Base class: something the caller can fix; ``code`` is stable, ``message`` is for humans."""

    code: ClassVar[str] = "engine_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        """The JSON shape a job's ``error`` takes."""
        out = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


class InvalidModel(EngineError):
    code = "invalid_model"


class UnsupportedModel(EngineError):
    code = "unsupported_model"


class UnsupportedOperator(UnsupportedModel):
    code = "unsupported_operator"


class InvalidSpec(EngineError):
    code = "invalid_spec"


class Unsupported(InvalidSpec):
    code = "unsupported"


class LayerPatternUnmatched(InvalidSpec):
    code = "layer_pattern_unmatched"

    def __init__(self, pattern: str, field: str, available: Sequence[str]) -> None:
        shown = ", ".join(available[:5]) + (", ..." if len(available) > 5 else "")
        super().__init__(
            f"layer pattern {pattern!r} in {field} matches no prunable tensor; "
            f"prunable tensors include: {shown or 'none'}",
            field=field,
        )
        self.pattern = pattern


class DataMismatch(EngineError):
    code = "data_mismatch"


ERROR_CODES: tuple[str, ...] = tuple(
    cls.code
    for cls in (
        EngineError,
        InvalidModel,
        UnsupportedModel,
        UnsupportedOperator,
        InvalidSpec,
        Unsupported,
        LayerPatternUnmatched,
        DataMismatch,
    )
)
