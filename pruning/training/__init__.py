"""Retraining (issue 4): fine-tuning with fixed masks, iterative and gradual schedules,
distillation, regrowth. ``pruning.training.run.prune_with_training`` is the engine's entry."""
