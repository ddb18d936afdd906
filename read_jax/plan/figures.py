"""Per-device memory, roofline times and FLOPs of a compiled plan, and the smallest mesh that fits.

Parameter, optimizer and KV cache bytes are exact shard sizes on an abstract mesh; activations and
workspace are the compiled programs' XLA temp bytes (the package docstring says why).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from read_jax.accelerators import Accelerator
from read_jax.plan.compile import Compiled, Plan, sampler_rows

MAX_SEARCH_CHIPS = 1 << 16
MAX_TP = 64


# ----------------------------------------------------------------------------- figures
@dataclasses.dataclass(frozen=True)
class Memory:
    """Bytes per device, in the plan's dtype."""

    params_teacher: float
    params_student: float
    optimizer: float
    activations: float
    kv_cache: float
    generation_workspace: float

    @property
    def params(self) -> float:
        return self.params_teacher + self.params_student

    @property
    def total(self) -> float:
        """Resident state + the larger of the train step's and generation's transient memory."""
        return self.params + self.optimizer + max(self.activations, self.kv_cache + self.generation_workspace)


MEMORY_SOURCES = {
    "params": "analytic shard sizes (rule table of read_jax.sharding)",
    "optimizer": "analytic shard sizes (AdamW moments, params' dtype)",
    "activations": "XLA:CPU memory analysis: temp bytes of the train step",
    "kv_cache": "analytic shard sizes (sampler's decode cache)",
    "generation_workspace": "XLA:CPU memory analysis: temp bytes of prefill / decode step (the larger)",
}


def memory(plan: Plan, compiled: Compiled, mesh: tuple[int, int, int] | None = None) -> Memory:
    """Per-device bytes on ``mesh`` (default: the plan's).  On another mesh the compiled temp bytes
    are scaled by the ratio of data · fsdp · tp (an estimate)."""
    import jax.numpy as jnp

    from read_jax.plan import programs as pp
    from read_jax.distill.train_step import OptimizerConfig

    mesh = mesh or plan.mesh
    amesh = pp.abstract_mesh(mesh)

    def student_state(config) -> tuple[int, int]:
        _, params = pp.abstract_params(config, amesh)
        return pp.shard_bytes(params), pp.shard_bytes(pp.abstract_opt_state(params, amesh, OptimizerConfig()))

    params_student, optimizer = (int(x) for x in _linear_in_depth(plan.student, student_state))
    rows = sampler_rows(plan.spec.generation.batch, mesh)
    (params_teacher, kv_cache) = _linear_in_depth(plan.teacher, lambda config: (
        pp.shard_bytes(pp.abstract_params(config, amesh)[1]),
        pp.shard_bytes(pp.abstract_decode_cache(config, amesh, rows, plan.cache_len))))
    scale = jnp.dtype(plan.spec.dtype).itemsize / 4 * math.prod(plan.mesh) / math.prod(mesh)
    return Memory(
        params_teacher=params_teacher, params_student=params_student, optimizer=optimizer,
        activations=max(compiled.train.temp_bytes, 0.0) * scale, kv_cache=kv_cache,
        generation_workspace=max(compiled.prefill.temp_bytes, compiled.decode.temp_bytes, 0.0) * scale)


def _linear_in_depth(config: Any, sizes: Callable[[Any], tuple[int, ...]]) -> tuple[int, ...]:
    """``sizes(config)`` computed on copies of 1 and 2 layers: every layer has the same shapes and
    shardings, so byte counts are exactly linear in depth, and an 80-layer abstract model (seconds
    of ``eval_shape``) is never built."""
    one, two = (sizes(config.replace(num_hidden_layers=k)) for k in (1, 2))
    return tuple(a + (config.num_hidden_layers - 1) * (b - a) for a, b in zip(one, two))


def matmul_params(config: Any) -> int:
    """Parameters that multiply activations: all but the input embedding table (a gather), unless tied."""
    return config.num_params() - (0 if config.tie_word_embeddings else config.vocab_size * config.hidden_size)


def roofline(flops: float, nbytes: float, chip: Accelerator) -> tuple[float, str]:
    """(seconds, the bound) of a program doing ``flops`` and moving ``nbytes`` on one chip."""
    compute, memory_s = flops / chip.peak_flops, nbytes / chip.hbm_bandwidth
    return (compute, "compute") if compute >= memory_s else (memory_s, "memory")


def estimate(plan: Plan, compiled: Compiled, mem: Memory) -> dict[str, Any]:
    """Roofline step times and tokens/s on the plan's accelerator (collectives not modelled).

    Bytes per device (weights: the matrices that multiply, gathered over fsdp, one tp slice):
    the train step reads the teacher's weights once and the student's twice (forward,
    backward), writes the student's full gradients, reads and writes the optimizer state,
    reads the parameter and gradient shards for the update, and writes then reads its
    activations; a decode step reads the teacher's weights and the KV cache; a prefill adds
    its workspace, written and read."""
    import jax.numpy as jnp

    spec, n, tp, chip = plan.spec, plan.devices, plan.mesh[2], plan.chip
    item = jnp.dtype(spec.dtype).itemsize
    teacher_w, student_w = (matmul_params(c) * item / tp for c in (plan.teacher, plan.student))
    train_bytes = (teacher_w if spec.loss == "kl" else 0) + 3 * student_w + 2 * mem.optimizer \
        + 2 * mem.params_student + 2 * mem.activations
    train_s, train_bound = roofline(compiled.train.flops / n, train_bytes, chip)
    decode_s, decode_bound = roofline(compiled.decode.flops / n, teacher_w + mem.kv_cache, chip)
    prefill_s, prefill_bound = roofline(compiled.prefill.flops / n,
                                        teacher_w + mem.kv_cache + 2 * mem.generation_workspace, chip)
    gen = spec.generation
    call_s = prefill_s + gen.new_tokens * decode_s
    tokens = spec.train.rows * spec.train.length
    return {"train_step_s": train_s, "train_bound": train_bound, "train_tokens_per_s": tokens / train_s,
            "decode_step_s": decode_s, "decode_bound": decode_bound, "decode_tokens_per_s": gen.batch / decode_s,
            "prefill_s": prefill_s, "prefill_bound": prefill_bound, "generation_call_s": call_s,
            "generation_tokens_per_s": gen.batch * gen.new_tokens / call_s}


def flops_per_token(plan: Plan, compiled: Compiled) -> dict[str, dict[str, float]]:
    """XLA's count (global programs) and the analytic 6N / 2N, per trained / generated / prompt token."""
    spec = plan.spec
    teacher, student = matmul_params(plan.teacher), matmul_params(plan.student)
    head = plan.teacher.vocab_size * plan.teacher.hidden_size  # prefill: logits of the last position only
    return {
        "train": {"xla": compiled.train.flops / (spec.train.rows * spec.train.length),
                  "analytic": 6 * student + (2 * teacher if spec.loss == "kl" else 0)},
        "decode": {"xla": compiled.decode.flops / plan.gen_rows, "analytic": 2 * teacher},
        "prefill": {"xla": compiled.prefill.flops / (plan.gen_rows * plan.prompt_bucket),
                    "analytic": 2 * (teacher - head) + 2 * head / plan.prompt_bucket},
    }


def fits(total: float, plan: Plan) -> bool:
    return total <= (1 - plan.spec.margin) * plan.chip.hbm_bytes


def smallest_fitting_mesh(plan: Plan, compiled: Compiled) -> tuple[int, tuple[int, int, int], Memory] | None:
    """The fewest chips (the plan's count, then doublings) and, for that count, the mesh with the
    smallest tp (a power of two; data 1, fsdp the rest, dividing the training rows) whose peak
    fits: fsdp's collectives overlap with compute, tp's sit on the critical path.  None if no
    mesh up to `MAX_SEARCH_CHIPS` fits."""
    n = plan.devices
    while n <= MAX_SEARCH_CHIPS and n <= plan.spec.train.rows * MAX_TP:
        tp = 1
        while tp <= min(n, MAX_TP):
            if n % tp == 0 and plan.spec.train.rows % (n // tp) == 0:
                mem = memory(plan, compiled, (1, n // tp, tp))
                if fits(mem.total, plan):
                    return n, (1, n // tp, tp), mem
            tp *= 2
        n *= 2
    return None
