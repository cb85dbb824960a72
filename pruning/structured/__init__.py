"""Structured pruning: whole channels removed from ONNX graphs (physically smaller models),
N:M patterns for sparse tensor cores, and what each means for latency on the hardware."""
