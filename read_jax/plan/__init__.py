"""`read-jax plan CONFIG`: memory and time of a teacher/student pair on a mesh, before any weights.

    read-jax plan experiments/plans/llama3.3-70b_llama3.1-8b.yaml [--json] [--accelerator v5e] [--devices 256]

CONFIG names the teacher's and the student's Hugging Face ``config.json`` fields inline (no
weights, no hub), the dtype, the accelerator, the ('data', 'fsdp', 'tp') mesh and the shapes of
one training batch and one generation call.  The command lowers and compiles, from abstract
arrays only (`read_jax.plan.programs`: ``nnx.eval_shape``, ``ShapeDtypeStruct`` s, nothing
allocated), the programs ReAD runs on that mesh of fake CPU devices:
- the KD train step (teacher forward + student forward / backward + AdamW update), the
  project's own `make_train_step` with `Distiller`'s shardings;
- the sampler's prefill of a prompt batch, and one decode step over the full KV cache.

Why the figures are what they are:
- Depth.  A 70B program takes minutes to compile on two cores, and every layer is the same:
  each model is compiled at 1 and 2 layers (same widths) and per-layer figures are
  extrapolated linearly to its depth (a model of at most 2 layers is compiled as it is).
- Memory.  Parameters, AdamW moments and the KV cache are exact shard sizes under the rule
  table (`read_jax.sharding`).  Activations and generation workspace are XLA's memory
  analysis (temp bytes) of the compiled programs: XLA:CPU's, with XLA:CPU's scheduler, which
  is what this machine has.  XLA:CPU computes bfloat16 matmuls in float32 and keeps float32
  copies of the weights they read (more temp bytes in bf16 than in float32,
  docs/benchmarks.md), which no TPU / GPU program does; so a bfloat16 plan compiles the float32 program and halves its temp bytes.
- FLOPs.  XLA's cost analysis counts a while loop's body once, and the chunked loss is a
  ``lax.scan``: FLOPs are counted on the step with the loss in a single chunk (the same
  matmuls, no loop), from the unpartitioned module, next to the analytic 6·N (student
  forward + backward) + 2·N (teacher forward) per token, N the parameters that multiply
  (all but the input embedding table, unless it is tied to the output head).
- Time.  A roofline per device: max(FLOPs / peak, bytes / HBM bandwidth), with the bytes a
  step must at least move (weights, optimizer state, activations written and read back).
  Collectives are not modelled; it is an upper bound on throughput.
- Verdict.  The peak per device is parameters + optimizer state + the larger of the train
  step's activations and generation's KV cache + workspace (ReAD alternates the two); it
  fits when it stays under (1 − margin) × HBM.  When it does not, the smallest mesh that
  would is searched with exact parameter / optimizer / KV shard sizes and activations scaled
  by 1 / (data · fsdp · tp): an estimate, to be confirmed by planning that mesh.

The command sets ``--xla_force_host_platform_device_count`` before jax is imported; in a
process where jax already runs with too few CPU devices it plans in a child process.
"""

from read_jax.accelerators import Accelerator, accelerator
from read_jax.plan.cli import main, plan_in_child
from read_jax.plan.compile import Compiled, Plan, compile_plan, resolve, sampler_rows
from read_jax.plan.figures import (
    MAX_SEARCH_CHIPS, MAX_TP, MEMORY_SOURCES, Memory, estimate, fits, flops_per_token, matmul_params, memory,
    roofline, smallest_fitting_mesh,
)
from read_jax.plan.reporting import format_report, report
from read_jax.plan.spec import (
    DEVICE_FLAG, GenerationShape, MeshSpec, PlanSpec, TrainShape, _flag_count, _with_device_count,
    cpu_devices_ready, load_spec, resolve_mesh,
)

__all__ = [  # with the two device-flag helpers tests reach as read_jax.plan._*
    "DEVICE_FLAG", "MAX_SEARCH_CHIPS", "MAX_TP", "MEMORY_SOURCES", "Accelerator", "Compiled", "GenerationShape",
    "Memory", "MeshSpec", "Plan", "PlanSpec", "TrainShape", "_flag_count", "_with_device_count", "accelerator",
    "compile_plan", "cpu_devices_ready", "estimate", "fits", "flops_per_token", "format_report", "load_spec", "main",
    "matmul_params", "memory", "plan_in_child", "report", "resolve", "resolve_mesh", "roofline", "sampler_rows",
    "smallest_fitting_mesh",
]
