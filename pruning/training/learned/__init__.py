"""Learned sparsity (issue 16): methods that learn which weights to drop while training,
then end at exactly the requested sparsity by a projection on their own score.
``pruning.training.learned.run.train_learned`` is the engine's entry; ``LEARNED`` names the
methods (``l0``, ``variational_dropout``, ``str``, ``movement``)."""

from pruning.training.learned.base import LearnedMethod
from pruning.training.learned.registry import LEARNED, is_learned

__all__ = ["LEARNED", "LearnedMethod", "is_learned"]
