"""The engine's classes of one method family by the spec's method name, filled by the classes
themselves: a method's file decorates its class (``@CALIBRATED.register``) and
``load_methods`` imports every module of the method packages, so a new file needs no import
line anywhere else. ``check`` compares a family's classes with the declared methods
(``shears_methods``), which the engine does at import (``pruning/methods/__init__.py``)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from typing import ClassVar, Protocol, TypeVar, cast

from shears_methods import Family, check_names, names

# Every module of these packages is imported by ``load_methods``: a method's file goes in one.
PACKAGES = ("pruning.methods", "pruning.training.learned")


class _Named(Protocol):
    name: ClassVar[str]


T = TypeVar("T", bound=_Named)
C = TypeVar("C", bound=type)


class MethodRegistry(Mapping[str, type[T]]):
    """The classes of one family (``data_free``, ``calibrated``, ``learned``), each a
    subclass of ``base``, in registry order."""

    def __init__(self, family: Family, base: type, where: str) -> None:
        self.family = family
        self.base = base
        self.where = where  # named in the error when the classes and the registry differ
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: C) -> C:
        """Class decorator: ``cls`` runs the spec's method ``cls.name``."""
        if not issubclass(cls, self.base):
            raise TypeError(f"{cls.__name__} is not a {self.base.__name__}")
        method = cast(type[T], cls)
        known = self._classes.setdefault(method.name, method)
        if known is not method:
            raise RuntimeError(
                f"{self.where}: {known.__name__} and {cls.__name__} both run method {method.name!r}"
            )
        return cls

    def check(self) -> None:
        """Raise when the family's classes name other methods than its declared ones."""
        check_names(self.where, self._classes, family=self.family)

    def __getitem__(self, name: str) -> type[T]:
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        order = {name: i for i, name in enumerate(names())}
        return iter(sorted(self._classes, key=lambda name: order.get(name, len(order))))

    def __len__(self) -> int:
        return len(self._classes)


def load_methods() -> None:
    """Import every module of the method packages, which registers their classes."""
    for package in PACKAGES:
        for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
            importlib.import_module(f"{package}.{module.name}")
