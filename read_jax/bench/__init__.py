"""Benchmarks against the reference implementations, one module per `read-jax bench NAME`."""
