"""The streaming engine: ONNX jobs that need no data, pruned tensor by tensor from disk.
``job`` is its entry point (``pruning.engine`` calls it); nothing is imported here, so the
modules below may be used by the rest of the engine without import cycles."""
