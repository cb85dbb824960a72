"""The streaming engine: ONNX jobs that need no data, pruned tensor by tensor from disk."""

from pruning.streaming.job import NotStreamable, StreamedCall, prune_streamed, streamable

__all__ = ["NotStreamable", "StreamedCall", "prune_streamed", "streamable"]
