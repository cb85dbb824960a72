"""Activation methods hold the model in memory twice over (ONNX Runtime capturing layer
inputs, and the weights they update), so a model above the measurement budget
(``SHEARS_MEASURE_MEMORY_BYTES``) is refused at createJob with a 422 that says so, instead of
a job that would run out of memory. Magnitude and random prune such a model tensor by tensor.
The model's size is its upload's, from its record."""

from api_schemas import ProblemFieldError, PruneSpec
from service.problems import ProblemError
from shears_methods import METHODS
from storage import ModelRecord


def check_memory_budget(spec: PruneSpec, model: ModelRecord, budget: int) -> None:
    method = spec.method.name
    if METHODS[method].family != "calibrated" or 2 * model.size_bytes <= budget:
        return
    message = (
        f"{method} loads the model in ONNX Runtime to capture layer inputs; model "
        f"{model.id!r} ({model.size_bytes / 1024**3:.2f} GiB) needs about twice that, above "
        f"the worker's budget of {budget / 1024**3:.2f} GiB (SHEARS_MEASURE_MEMORY_BYTES); use "
        "magnitude or random, which prune a model of any size tensor by tensor, or raise the "
        "budget on workers with the memory"
    )
    raise ProblemError(
        422,
        "model_too_large",
        message,
        errors=[ProblemFieldError(field="method.name", message=message)],
    )
