"""When to prune and to what sparsity: pure functions of the schedule, the target and the
number of optimizer steps. Every schedule's last event prunes to exactly the target."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pruning.training.spec import ScheduleSpec


def iterative_target(round_: int, rounds: int, final: float) -> float:
    """Han et al. 2015: each round prunes the same fraction of the surviving weights, so
    round r of R leaves (1 - s_f)^(r/R) of them."""
    if round_ == rounds:
        return final
    return 1.0 - float((1.0 - final) ** (round_ / rounds))


def split_epochs(epochs: int, rounds: int) -> list[int]:
    """Epochs per round, as even as possible; the later rounds take the remainder (the last
    round's fine-tuning at the final sparsity matters most)."""
    base, extra = divmod(epochs, rounds)
    return [base + (1 if r >= rounds - extra else 0) for r in range(rounds)]


def gradual_target(k: int, steps: int, final: float, initial: float, exponent: float) -> float:
    """Zhu & Gupta 2017, eq. 1: s_k = s_f + (s_i - s_f)(1 - k/n)^e, cubic for e = 3."""
    if k >= steps:
        return final
    return final + (min(initial, final) - final) * float((1.0 - k / steps) ** exponent)


def gradual_steps(steps: int, fraction: float, total_steps: int) -> list[int]:
    """Optimizer steps t_k = k * dt of events k = 0..n, dt = max(1, floor(fraction * T / n))."""
    dt = max(1, math.floor(fraction * total_steps / steps))
    return [k * dt for k in range(steps + 1)]


@dataclass(frozen=True)
class SparsitySchedule:
    """Pruning events as optimizer steps; ``target(i, final)`` is event i's sparsity for a
    tensor (or pool) whose final sparsity is ``final`` (per-layer overrides follow the same
    shape to their own final value)."""

    spec: ScheduleSpec
    steps: tuple[int, ...]  # optimizer step before which event i prunes, non-decreasing

    def target(self, index: int, final: float) -> float:
        if self.spec.kind == "iterative":
            return iterative_target(index + 1, self.spec.rounds, final)
        if self.spec.kind == "gradual":
            s = self.spec
            return gradual_target(index, s.steps, final, s.initial_sparsity, s.exponent)
        return final


def plan_schedule(spec: ScheduleSpec, epochs: int, batches_per_epoch: int) -> SparsitySchedule:
    total = epochs * batches_per_epoch
    if spec.kind == "iterative":
        starts, done = [], 0
        for round_epochs in split_epochs(epochs, spec.rounds):
            starts.append(done * batches_per_epoch)
            done += round_epochs
        return SparsitySchedule(spec, tuple(starts))
    if spec.kind == "gradual":
        return SparsitySchedule(
            spec, tuple(gradual_steps(spec.steps, spec.pruning_fraction, total))
        )
    return SparsitySchedule(spec, (0,))


def lr_factor(kind: str, warmup: float, step: int, total: int, hold_until: int = 0) -> float:
    """The learning rate's multiplier at optimizer step ``step`` of ``total``: a linear rise
    over the first ``warmup`` share of the steps, then, for ``cosine``, the full rate until
    ``hold_until`` (the last pruning event: decaying while sparsity still rises leaves no
    rate to recover from the last cuts) and a half cosine down to 0 at the last step
    (Loshchilov & Hutter 2017, without restarts); ``constant`` is 1 throughout."""
    if kind == "constant":
        return 1.0
    rise = round(warmup * total)
    if step < rise:
        return (step + 1) / (rise + 1)
    start = max(rise, min(hold_until, total - 1))
    if step < start:
        return 1.0
    span = max(total - start, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - start, span) / span))
