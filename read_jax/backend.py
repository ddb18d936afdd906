"""CPU-only speed-ups behind one door: which kernels and compiler options a program uses, per backend.

Every formulation in read_jax is correct on every backend; a few are faster only on XLA:CPU and are
measured there (the numbers are in docs/benchmarks.md):

- ``custom_attention_backward``: the train path's causal attention with block skipping and a
  hand-written backward (`models.attention.causal_attend`) instead of autodiff of `attend`;
- ``rope_fusion_barrier``: RoPE tables materialised once behind a `lax.cond` with identical branches,
  which XLA:CPU would otherwise recompute inside every consumer;
- ``sequential_solves``: the bandit's triangular solves looped item by item under `vmap` (XLA:CPU's
  batched TriangularSolve is far slower);
- ``reduce_single_query_attention``: a one-token query's attention as broadcast multiplies reduced
  over the contracted axis (XLA:CPU's YNN reductions) instead of one tiny matmul per (batch, head);
- ``cpu_decode_layout`` and `decode_compiler_options`: the sampler's decode on `[out, in]` weight
  copies multiplied from the left (`models.decoder.StackedWeights`), compiled with XLA:CPU's YNN
  reduction fusions.

On TPU and GPU the plain formulation runs.  The backend is the platform of the devices a program
runs on: callers that know them (a mesh, a model's arrays) trace inside `on_platform(...)`; without
one, JAX's default backend decides.  Decisions are made when a function is traced, so one jitted
function serves one platform (read_jax builds its jitted steps per mesh).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

import jax

_local = threading.local()

# the sampler's decode loop on XLA:CPU: YNN library fusions for reductions only (its dots go to
# XLA:CPU's own kernels); never handed to another backend's compiler
DECODE_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}


def platform_of(where: Any = None) -> str:
    """The platform of a mesh, a device, an array or a sequence of devices (default: JAX's default backend)."""
    if where is None:
        return jax.default_backend()
    if hasattr(where, "devices") and not callable(where.devices):  # a Mesh
        return where.devices.flat[0].platform
    if isinstance(where, jax.Array):
        return next(iter(where.devices())).platform
    if hasattr(where, "platform"):
        return where.platform
    return next(iter(where)).platform


@contextlib.contextmanager
def on_platform(platform: str) -> Iterator[None]:
    """Trace the programs built inside this block for ``platform`` (nested blocks restore the outer one)."""
    previous = getattr(_local, "platform", None)
    _local.platform = platform
    try:
        yield
    finally:
        _local.platform = previous


def current_platform() -> str:
    return getattr(_local, "platform", None) or jax.default_backend()


def on_cpu() -> bool:
    return current_platform() == "cpu"


def custom_attention_backward() -> bool:
    return on_cpu()


def rope_fusion_barrier() -> bool:
    return on_cpu()


def reduce_single_query_attention() -> bool:
    return on_cpu()


def sequential_solves() -> bool:
    return on_cpu()


def cpu_decode_layout(platform: str) -> bool:
    return platform == "cpu"


def decode_compiler_options(platform: str) -> dict[str, str] | None:
    return dict(DECODE_COMPILER_OPTIONS) if platform == "cpu" else None
