"""Better masks and weights after a one-shot pass, without training: prune-and-grow swaps
(DSnoT-style) and the least-squares update of the kept weights, each layer against its
dense output on the calibration data."""

from pruning.refine.run import Refiner

__all__ = ["Refiner"]
