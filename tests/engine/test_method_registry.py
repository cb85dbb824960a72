"""Every engine class the spec can name has a `shears_methods` entry of its family, and every
entry has its class: the API, the client and the engine agree on what exists."""

from pruning.methods import CALIBRATED, METHODS, SCORERS, CalibratedMethod, Scorer
from pruning.training.learned import LEARNED, LearnedMethod
from shears_methods import METHODS as DECLARED
from shears_methods import names


def test_every_engine_class_has_a_registry_entry_and_every_entry_a_class() -> None:
    assert set(METHODS) == set(DECLARED)


def test_each_engine_class_is_of_its_declared_family() -> None:
    assert set(SCORERS) == set(names(family="data_free"))
    assert set(CALIBRATED) == set(names(family="calibrated"))
    assert set(LEARNED) == set(names(family="learned"))
    base = {"data_free": Scorer, "calibrated": CalibratedMethod, "learned": LearnedMethod}
    for name, cls in METHODS.items():
        assert issubclass(cls, base[DECLARED[name].family]), name


def test_each_engine_class_is_registered_under_its_own_name() -> None:
    for name, cls in METHODS.items():
        assert cls.name == name
