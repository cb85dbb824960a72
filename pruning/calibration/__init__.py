"""Calibration data for data-driven methods: reading datasets, capturing layer inputs (ONNX
Runtime with intermediate outputs, TorchScript graphs), streaming statistics and gradients.

Modules are imported directly (``pruning.calibration.dataset`` ...): this package root stays
empty so that methods and the engine can each import the piece they use without cycles.
"""
