"""Learned sparsity (issue 16): methods that learn which weights to drop while training,
then end at exactly the requested sparsity by a projection on their own score.
``pruning.training.learned.run.train_learned`` is the engine's entry; ``LEARNED`` holds the
methods' classes (``l0``, ``variational_dropout``, ``str``, ``movement``), each registered by
its own file."""

from pruning.training.learned.base import LEARNED, LearnedMethod
from shears_methods import method_info


def is_learned(name: str) -> bool:
    info = method_info(name)
    return info is not None and info.family == "learned"


__all__ = ["LEARNED", "LearnedMethod", "is_learned"]
