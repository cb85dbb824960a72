"""Every engine class the spec can name has a `shears_methods` entry of its family, and every
entry has its class: the API, the client and the engine agree on what exists. Names, order
and option defaults all come from the entries, so adding a method is its entry and its file."""

import re
from typing import Any, ClassVar, get_args

import pytest
import torch

from api_schemas.methods import MEMBERS, member
from api_schemas.spec import PruneSpec as Contract
from pruning.cli import main
from pruning.method_registry import MethodRegistry
from pruning.methods import CALIBRATED, METHODS, SCORERS, CalibratedMethod, Scorer
from pruning.methods.calibrated import CalibratedJob
from pruning.spec import parse_spec
from pruning.training.learned import LEARNED, LearnedMethod
from pruning.training.learned.base import Setup
from shears_methods import METHODS as DECLARED
from shears_methods import MethodInfo, Option, names


def test_every_engine_class_has_a_registry_entry_and_every_entry_a_class() -> None:
    assert set(METHODS) == set(DECLARED)


def test_each_engine_class_is_of_its_declared_family() -> None:
    assert list(SCORERS) == list(names(family="data_free"))
    assert list(CALIBRATED) == list(names(family="calibrated"))
    assert list(LEARNED) == list(names(family="learned"))
    base = {"data_free": Scorer, "calibrated": CalibratedMethod, "learned": LearnedMethod}
    for name, cls in METHODS.items():
        assert issubclass(cls, base[DECLARED[name].family]), name


def test_each_engine_class_is_registered_under_its_own_name() -> None:
    for name, cls in METHODS.items():
        assert cls.name == name


def test_the_union_the_engine_and_the_cli_list_the_registry_in_its_order() -> None:
    union = Contract.model_fields["method"].annotation
    assert [m.model_fields["name"].default for m in get_args(union)] == list(DECLARED)
    assert list(MEMBERS) == list(METHODS) == list(DECLARED)


@pytest.mark.parametrize("name", list(DECLARED))
def test_a_spec_naming_a_method_alone_runs_it_with_its_entrys_defaults(name: str) -> None:
    extra: dict[str, Any] = {"calibration": {"dataset_id": "ds_1"}}
    if DECLARED[name].family == "learned":
        extra = {"retrain": {"dataset_id": "ds_1", "epochs": 2}}
    spec = parse_spec({"sparsity": 0.5, "method": {"name": name}, **extra})
    given = {k: v for k, v in DECLARED[name].defaults().items() if v is not None}
    assert dict(spec.method.options) == given


@pytest.mark.parametrize("name", list(DECLARED))
def test_each_engine_class_takes_exactly_its_entrys_options(name: str) -> None:
    options = DECLARED[name].defaults()
    if name in LEARNED:
        weights = {"w": torch.ones(4, 4)}
        LEARNED[name](Setup(weights, 0.5, 10, "global", options))
    else:
        METHODS[name](**options)
        if options:
            with pytest.raises(TypeError):
                METHODS[name]()  # no defaults of its own: the entry's are the only ones


def test_the_prune_help_names_every_method_it_can_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", "--help"]) == 0
    words = set(re.split(r"[\s,{}\[\]()]+", capsys.readouterr().out))
    runnable = {*names(family="data_free"), *names(family="learned")}
    assert runnable <= words, runnable - words


class _Fisher(CalibratedMethod):
    name: ClassVar[str] = "fisher"

    def prune(self, job: CalibratedJob) -> dict[str, Any]:
        return {}


def test_a_class_under_an_undeclared_name_is_refused() -> None:
    registry = MethodRegistry[CalibratedMethod]("calibrated", CalibratedMethod, "test")
    registry.register(_Fisher)
    with pytest.raises(RuntimeError, match=r"undeclared \['fisher'\]"):
        registry.check()


def test_a_class_of_another_family_or_a_second_class_for_a_name_is_refused() -> None:
    registry = MethodRegistry[Scorer]("data_free", Scorer, "test")
    with pytest.raises(TypeError, match="not a Scorer"):
        registry.register(_Fisher)
    registry = MethodRegistry[CalibratedMethod]("calibrated", CalibratedMethod, "test")
    registry.register(_Fisher)
    twin = type("Twin", (_Fisher,), {})
    with pytest.raises(RuntimeError, match="both run method 'fisher'"):
        registry.register(twin)


def test_a_new_entry_becomes_a_union_member_with_its_options() -> None:
    entry = MethodInfo(
        "fisher",
        "calibrated",
        frozenset({"calibration"}),
        ("unstructured",),
        ("one_shot",),
        "diagonal Fisher saliency",
        "FisherMethod",
        "Diagonal Fisher saliency.",
        (Option("samples", int, 8, "Samples per estimate.", ge=1, le=64),),
        ("samples",),
    )
    model = member(entry)
    assert model().model_dump() == {"name": "fisher", "samples": 8}
    assert model.model_json_schema()["examples"] == [{"name": "fisher", "samples": 8}]
    assert model.model_json_schema()["title"] == "FisherMethod"
    with pytest.raises(ValueError, match="less than or equal to 64"):
        model(samples=65)
