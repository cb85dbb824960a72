"""TorchScript adapter: weights are ``*.weight`` parameters of Conv/Linear-like modules,
written in place and saved with ``torch.jit.save`` (code, extra files and names unchanged).

TorchScript is code: the worker opens it only inside its sandboxed child process.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

from pruning.errors import DataMismatch, InvalidModel, UnsupportedModel
from pruning.input_ranges import InputRange
from pruning.models.base import Array, ModelAdapter, Runner
from pruning.models.script_graph import first_readers
from pruning.models.torchscript_ranges import torchscript_input_ranges
from pruning.models.traced_inputs import read_traced_inputs
from pruning.tensors import Signature, SkippedTensor, TensorSpec, WeightTensor

INPUTS_FILE = "shears/inputs.json"  # optional extra file: [{"name", "dtype", "shape"}]
NOT_PRUNABLE = ("Embedding", "Norm")  # module kinds whose 2-D weights are not connections
NUMPY_SHARED = (torch.float32, torch.float64, torch.float16)
UNUSED = "not used by forward(): dead weight, the model's outputs do not depend on it"


class TorchScriptModel(ModelAdapter):
    format: ClassVar[str] = "torchscript"
    suffix: ClassVar[str] = ".pt"
    runtime: ClassVar[str] = f"torch {torch.__version__.split('+')[0]}"
    exact_shapes: ClassVar[bool] = False  # recorded shapes are trace examples, not limits

    def __init__(self, module: torch.jit.ScriptModule, extras: dict[str, Any], path: Path) -> None:
        self.module = module
        self.extras = extras
        readers = _readers_by_parameter(module)
        found = _prunable_parameters(module)
        self._params = [(n, kind, p) for n, kind, p in found if n in readers]
        self._readers = readers
        self._skipped = [
            SkippedTensor(n, module_path(n), UNUSED) for n, _, _ in found if n not in readers
        ]
        self._weights: list[tuple[WeightTensor, torch.Tensor, bool]] | None = None
        self.signature = Signature(_inputs(module, extras, path), _outputs(module))

    @classmethod
    def load(cls, path: Path, probe_runtime: bool = True) -> TorchScriptModel:
        names = _archive_names(path)
        # Archive entries are <archive>/extra/<name>; the content is filled in by jit.load.
        parts = [n.split("/", 2) for n in names]
        extras: dict[str, Any] = {p[2]: "" for p in parts if len(p) == 3 and p[1] == "extra"}
        return cls(_load(path, extras), extras, path)

    def parameter_count(self) -> int:
        return sum(p.numel() for _, p in self.module.named_parameters() if p.is_floating_point())

    def prunable_info(self) -> list[dict[str, Any]]:
        return [
            {"name": n, "shape": list(p.shape), "op": op, "node": module_path(n)}
            for n, op, p in self._params
        ]

    def prunable(self) -> list[WeightTensor]:
        if self._weights is None:
            self._weights = []
            for name, op, param in self._params:
                values, shared = _numpy_view(param)
                tensor = WeightTensor(name, op, values, module_path(name), self._readers[name])
                self._weights.append((tensor, param, shared))
        return [w for w, _, _ in self._weights]

    def input_ranges(self) -> dict[str, InputRange]:
        return torchscript_input_ranges(self.module, [s.name for s in self.signature.inputs])

    def skipped(self) -> list[SkippedTensor]:
        return list(self._skipped)

    def save(self, out_dir: Path) -> Path:
        with torch.no_grad():
            for tensor, param, shared in self._weights or []:
                if not shared:
                    param.copy_(torch.from_numpy(tensor.values))
        out = out_dir / f"model{self.suffix}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # jit deprecation notices
            torch.jit.save(self.module, str(out), _extra_files=self.extras)
        return out

    @classmethod
    def iter_parameters(cls, path: Path) -> Iterator[tuple[str, Array]]:
        for name, param in _load(path, {}).named_parameters():
            if param.is_floating_point():
                yield name, _numpy_view(param)[0]

    @classmethod
    def open_runner(cls, path: Path, threads: int, input_names: list[str]) -> Runner:
        return TorchScriptRunner(_load(path, {}), threads, input_names)


class TorchScriptRunner:
    def __init__(self, module: torch.jit.ScriptModule, threads: int, names: list[str]) -> None:
        self.module = module.eval()
        self.names = names
        self._previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads)

    def run(self, feeds: Mapping[str, Array]) -> list[Array]:
        args = [torch.from_numpy(feeds[name]) for name in self.names]
        try:
            with torch.no_grad():
                out = self.module(*args)
        except Exception as exc:  # TorchScript raises RuntimeError with the interpreter trace
            shapes = {name: list(feeds[name].shape) for name in self.names}
            detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            raise DataMismatch(
                f"the model failed on inputs {shapes}: {detail}; check input_shapes"
            ) from exc
        return [t.detach().numpy() for t in _flatten(out)]

    def close(self) -> None:
        torch.set_num_threads(self._previous_threads)


def _archive_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidModel(f"the TorchScript archive is damaged: {exc}") from exc
    if not any("/code/" in n for n in names):
        raise InvalidModel(
            "this zip is not TorchScript (no code/ entries): a torch.save() checkpoint or "
            "state_dict cannot be run; export with torch.jit.script or torch.jit.trace, "
            "then torch.jit.save"
        )
    return names


def _load(path: Path, extras: dict[str, Any]) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # jit deprecation notices
            loaded: torch.jit.ScriptModule = torch.jit.load(  # type: ignore[no-untyped-call]
                str(path), map_location="cpu", _extra_files=extras
            )
            return loaded
    except Exception as exc:  # torch raises RuntimeError/ValueError with C++ traces
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise InvalidModel(f"torch.jit.load cannot open the archive: {detail}") from exc


def _prunable_parameters(module: torch.jit.ScriptModule) -> list[tuple[str, str, torch.Tensor]]:
    """(name, module kind, parameter) of weights of Conv/Linear-like modules, leaving out any
    tied to a parameter that is not prunable (e.g. an LM head sharing the embedding)."""
    found: dict[str, tuple[str, torch.Tensor]] = {}
    for prefix, sub in module.named_modules():
        kind = str(getattr(sub, "original_name", type(sub).__name__))
        if any(word in kind for word in NOT_PRUNABLE):
            continue
        for pname, param in sub.named_parameters(recurse=False):
            if pname == "weight" and param.dim() >= 2 and param.is_floating_point():
                found[f"{prefix}.{pname}" if prefix else pname] = (kind, param)
    everything = module.named_parameters(remove_duplicate=False)
    tied = {p.data_ptr() for name, p in everything if name not in found}
    return [(name, kind, p) for name, (kind, p) in found.items() if p.data_ptr() not in tied]


def module_path(name: str) -> str:
    """``encoder.query`` for ``encoder.query.weight``: the layer as the model's code names it."""
    return name.rsplit(".", 1)[0] if "." in name else name


def _readers_by_parameter(module: torch.jit.ScriptModule) -> dict[str, str]:
    """Parameter name -> the operator that first reads it in ``forward()``, through aliases
    (a submodule registered under two names is read under either)."""
    readers = first_readers(module)
    every = list(module.named_parameters(remove_duplicate=False))
    by_storage: dict[int, str] = {}
    for name, param in every:
        if name in readers:
            by_storage.setdefault(param.data_ptr(), readers[name])
    return {
        name: by_storage[param.data_ptr()]
        for name, param in every
        if param.data_ptr() in by_storage
    }


def _numpy_view(param: torch.Tensor) -> tuple[Any, bool]:
    """The parameter as a numpy array sharing its memory where possible; otherwise a float32
    copy (bfloat16, non-contiguous) that ``save()`` writes back. Second item: shared."""
    data = param.detach()
    if data.dtype in NUMPY_SHARED and data.is_contiguous():
        return data.numpy(), True
    return data.float().contiguous().numpy().copy(), False


def _inputs(module: torch.jit.ScriptModule, extras: dict[str, Any], path: Path) -> list[TensorSpec]:
    names = _tensor_arguments(module)
    declared = _declared_inputs(extras.get(INPUTS_FILE), names)
    if declared is not None:
        return declared
    traced = read_traced_inputs(path)
    if traced is not None and len(traced) == len(names):
        return [
            TensorSpec(n, dtype, shape) for n, (dtype, shape) in zip(names, traced, strict=True)
        ]
    # Shapes are not kept by torch.jit.save for scripted modules: prune needs input_shapes.
    return [TensorSpec(n, "float32", None) for n in names]


def _tensor_arguments(module: torch.jit.ScriptModule) -> list[str]:
    names = []
    for arg in _schema(module).arguments[1:]:
        if isinstance(arg.type, torch.TensorType):
            names.append(arg.name)
        elif not arg.has_default_value():
            raise UnsupportedModel(
                f"forward() takes {arg.name!r} of type {arg.type}; Shears can only feed "
                "Tensor arguments (give the others default values)"
            )
    return names


def _declared_inputs(raw: Any, names: list[str]) -> list[TensorSpec] | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
        entries = data["inputs"] if isinstance(data, dict) else data
        specs = [
            TensorSpec(str(e["name"]), str(e.get("dtype", "float32")), e["shape"]) for e in entries
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidModel(
            f"{INPUTS_FILE} is not a list of {{name, dtype, shape}} objects: {exc}"
        ) from exc
    if [s.name for s in specs] != names:
        raise InvalidModel(
            f"{INPUTS_FILE} names inputs {[s.name for s in specs]} but forward() takes {names}"
        )
    return specs


def _outputs(module: torch.jit.ScriptModule) -> list[TensorSpec]:
    returns = _schema(module).returns
    kind = returns[0].type if returns else None
    if isinstance(kind, torch.TupleType):
        return [TensorSpec(f"output_{i}", None, None) for i in range(len(kind.elements()))]
    return [TensorSpec("output", None, None)]


def _schema(module: torch.jit.ScriptModule) -> Any:
    return getattr(module.forward, "schema")  # noqa: B009  (a ScriptMethod attribute)


def _flatten(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, list | tuple):
        return [t for item in out for t in _flatten(item)]
    if isinstance(out, dict):
        return [t for item in out.values() for t in _flatten(item)]
    return []
