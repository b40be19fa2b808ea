"""Reproducible measurements; run each as `python -m benchmarks.NAME`."""
