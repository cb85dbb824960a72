"""How a target sparsity is spread over layers: uniform (every layer at the target), OWL's
outlier-weighted ratios, or each layer's measured sensitivity. Non-uniform allocations keep
the size-weighted mean exact: the zeros over the layers they allocate are round(target * n)."""

from pruning.allocation.allocate import Allocation, Allocator

__all__ = ["Allocation", "Allocator"]
