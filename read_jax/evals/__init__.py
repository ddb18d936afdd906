"""Downstream evaluation: metrics, task cards, benchmark loaders (TFDS, JSONL, HumanEval), scoring.

`metrics` is light (no jax); import the others explicitly.
"""
