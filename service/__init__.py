"""The HTTP API of Shears: a thin, reliable shell around the job store and the queue.

It never imports torch, onnx, onnxruntime, the engine (`pruning`) or the worker: it sends
tasks by name (see `service.tasks`), and the worker does everything that opens a model.
"""
