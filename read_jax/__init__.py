"""read_jax: ReAD (reinforcement-guided capability distillation) in JAX / Flax NNX.

The package follows the data flow of the method:
capabilities -> sampling (teacher generation) -> distill -> bandit -> loop.
"""

__version__ = "0.1.0"
