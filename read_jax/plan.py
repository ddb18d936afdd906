"""`read-jax plan CONFIG`: memory and time of a teacher/student pair on a mesh, before any weights.

    read-jax plan experiments/plans/llama3.3-70b_llama3.1-8b.yaml [--json] [--accelerator v5e] [--devices 256]

CONFIG names the teacher's and the student's Hugging Face ``config.json`` fields inline (no
weights, no hub), the dtype, the accelerator, the ('data', 'fsdp', 'tp') mesh and the shapes of
one training batch and one generation call.  The command lowers and compiles, from abstract
arrays only (`read_jax.plan_programs`: ``nnx.eval_shape``, ``ShapeDtypeStruct`` s, nothing
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

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from read_jax.accelerators import GIB, Accelerator, accelerator
from read_jax.config import load_yaml
from read_jax.errors import ReadJaxError

DEVICE_FLAG = "--xla_force_host_platform_device_count"
MAX_SEARCH_CHIPS = 1 << 16
MAX_TP = 64


# ----------------------------------------------------------------------------- the config file
@dataclasses.dataclass(frozen=True)
class MeshSpec:
    """Mesh axis sizes; one may be -1 (filled from the device count)."""

    data: int = 1
    fsdp: int = -1
    tp: int = 1


@dataclasses.dataclass(frozen=True)
class TrainShape:
    rows: int = 8
    length: int = 2048


@dataclasses.dataclass(frozen=True)
class GenerationShape:
    batch: int = 64
    prompt_length: int = 512
    new_tokens: int = 512


@dataclasses.dataclass(frozen=True)
class PlanSpec:
    """A plan file.  ``teacher`` / ``student``: ``config.json`` fields; ``loss``: ``kl`` (CE +
    forward KL, teacher forward inside the step; needs one vocabulary) or ``ce`` (SFT on the
    teacher's text); ``loss_chunk``: `LossConfig.chunk_size`."""

    teacher: dict[str, Any]
    student: dict[str, Any]
    name: str = ""
    dtype: Literal["bfloat16", "float32"] = "bfloat16"
    accelerator: Any = "v5p"
    devices: int | None = None
    mesh: MeshSpec = MeshSpec()
    loss: Literal["kl", "ce"] = "kl"
    loss_chunk: int | str | None = "auto"
    train: TrainShape = TrainShape()
    generation: GenerationShape = GenerationShape()
    margin: float = 0.1


def _positive(path: str, **fields: int) -> None:
    for name, value in fields.items():
        if value < 1:
            raise ReadJaxError(f"{path}: {name} must be >= 1, got {value}")


def load_spec(path: str | Path) -> PlanSpec:
    """Read and check a plan file (every error names the file and the field, on one line)."""
    try:
        spec = load_yaml(PlanSpec, path)
    except ReadJaxError as err:
        raise ReadJaxError(err if str(err).startswith(str(path)) else f"{path}: {err}") from None
    for name in ("teacher", "student"):
        if not isinstance(getattr(spec, name), Mapping):
            raise ReadJaxError(f"{path}: {name}: expected the model's config.json fields as a mapping")
    _positive(str(path), **{"train.rows": spec.train.rows, "train.length": spec.train.length,
                            "generation.batch": spec.generation.batch,
                            "generation.prompt_length": spec.generation.prompt_length,
                            "generation.new_tokens": spec.generation.new_tokens})
    if not 0 <= spec.margin < 1:
        raise ReadJaxError(f"{path}: margin must be in [0, 1), got {spec.margin}")
    return spec


def resolve_mesh(spec: PlanSpec, path: str, devices: int | None) -> tuple[int, tuple[int, int, int]]:
    """(device count, (data, fsdp, tp)) from ``devices`` (or the file's), filling one -1 entry."""
    shape = [spec.mesh.data, spec.mesh.fsdp, spec.mesh.tp]
    if any(s == 0 or s < -1 for s in shape) or shape.count(-1) > 1:
        raise ReadJaxError(f"{path}: mesh: sizes must be >= 1 with at most one -1, got {tuple(shape)}")
    n = devices if devices is not None else spec.devices
    known = math.prod(s for s in shape if s != -1)
    if n is None:
        if -1 in shape:
            raise ReadJaxError(f"{path}: devices: needed when the mesh has a -1 entry (or pass --devices)")
        n = known
    if n < 1:
        raise ReadJaxError(f"{path}: devices must be >= 1, got {n}")
    if -1 in shape:
        if n % known:
            raise ReadJaxError(f"{path}: mesh: {n} devices do not divide over the fixed axes (product {known})")
        shape[shape.index(-1)] = n // known
    if math.prod(shape) != n:
        raise ReadJaxError(f"{path}: mesh: data × fsdp × tp = {' × '.join(map(str, shape))} = {math.prod(shape)} "
                           f"does not equal the device count {n}")
    if spec.train.rows % (shape[0] * shape[1]):
        raise ReadJaxError(f"{path}: train.rows: {spec.train.rows} rows do not divide over data × fsdp = "
                           f"{shape[0] * shape[1]} batch shards")
    return n, (shape[0], shape[1], shape[2])


# ----------------------------------------------------------------------------- fake devices
def _flag_count(flags: str) -> int:
    found = re.findall(rf"{DEVICE_FLAG}=(\d+)", flags)
    return int(found[-1]) if found else 1


def _with_device_count(flags: str, n: int) -> str:
    return (re.sub(rf"\s*{DEVICE_FLAG}=\d+", "", flags) + f" {DEVICE_FLAG}={n}").strip()


def cpu_devices_ready(n: int) -> bool:
    """Make ``n`` CPU devices available to this process if jax has not started yet; True when it has them."""
    if "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if _flag_count(flags) < n:
            os.environ["XLA_FLAGS"] = _with_device_count(flags, n)
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        return True
    import jax

    return len(jax.devices("cpu")) >= n


def plan_in_child(argv: list[str], n: int) -> int:
    """Plan in a fresh process with ``n`` fake CPU devices (jax already runs here with fewer)."""
    env = dict(os.environ, XLA_FLAGS=_with_device_count(os.environ.get("XLA_FLAGS", ""), n), JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "read_jax.cli", "plan", *argv], env=env).returncode


# ----------------------------------------------------------------------------- resolved plan
@dataclasses.dataclass(frozen=True)
class Plan:
    spec: PlanSpec
    path: str
    teacher: Any  # DecoderConfig (imported with jax, after the device flag is set)
    student: Any
    chip: Accelerator
    devices: int
    mesh: tuple[int, int, int]

    @property
    def gen_rows(self) -> int:
        return sampler_rows(self.spec.generation.batch, self.mesh)

    @property
    def prompt_bucket(self) -> int:
        from read_jax.sampling import MIN_PROMPT_BUCKET, bucket

        return bucket(self.spec.generation.prompt_length, MIN_PROMPT_BUCKET)

    @property
    def cache_len(self) -> int:
        from read_jax.sampling import bucket

        return self.prompt_bucket + bucket(self.spec.generation.new_tokens)


def sampler_rows(batch: int, mesh: tuple[int, int, int]) -> int:
    """Rows the sampler runs for ``batch`` prompts: a power of two, a multiple of the batch shards."""
    from read_jax.sampling import bucket

    shards = mesh[0] * mesh[1]
    return -(-bucket(batch, shards) // shards) * shards


def resolve(spec: PlanSpec, path: str, devices: int, mesh: tuple[int, int, int], chip: Accelerator) -> Plan:
    from read_jax.models.config import DecoderConfig

    configs = {}
    for name in ("teacher", "student"):
        try:
            configs[name] = DecoderConfig.from_hf_dict(dict(getattr(spec, name)), dtype=spec.dtype)
        except ReadJaxError as err:
            raise ReadJaxError(f"{path}: {name}: {err}") from None
    tv, sv = configs["teacher"].vocab_size, configs["student"].vocab_size
    if spec.loss == "kl" and tv != sv:
        raise ReadJaxError(f"{path}: loss: kl compares distributions over one vocabulary, but the teacher has {tv} "
                           f"tokens and the student {sv} (use loss: ce)")
    return Plan(spec, path, configs["teacher"], configs["student"], chip, devices, mesh)


# ----------------------------------------------------------------------------- compiling
@dataclasses.dataclass(frozen=True)
class Compiled:
    """XLA figures of the three programs at full depth (extrapolated when more than one depth was
    compiled), in the compile dtype (float32)."""

    train: Any  # plan_programs.ProgramCost
    prefill: Any
    decode: Any
    train_depths: tuple[tuple[int | None, int], ...]  # (teacher, student) layers compiled; None: no teacher
    generation_depths: tuple[int, ...]  # teacher layers compiled
    extrapolated: bool
    unsharded_batch: tuple[str, ...]  # programs holding activations of the global batch on every device
    shrinking: tuple[str, ...]  # programs whose XLA temp bytes fell from the shallower to the deeper compile
    compile_s: float


def _depth_points(full: int) -> tuple[int, int | None]:
    """(base depth, second depth or None): models of at most 2 layers are compiled as they are."""
    return (full, None) if full <= 2 else (1, 2)


_MEASURED: dict[Any, Compiled] = {}


def compile_plan(plan: Plan) -> Compiled:
    """Compile the train step, prefill and decode step at reduced depths and extrapolate.

    Cached per process on everything the programs depend on (not the accelerator)."""
    spec = plan.spec
    key = (plan.teacher, plan.student, plan.mesh, spec.train, spec.generation, spec.loss, spec.loss_chunk)
    if key not in _MEASURED:
        _MEASURED[key] = _compile(plan)
    return _MEASURED[key]


def _compile(plan: Plan) -> Compiled:
    import jax

    from read_jax import plan_programs as pp
    from read_jax.sharding import make_mesh

    spec = plan.spec
    mesh = make_mesh(plan.mesh, jax.devices("cpu")[:plan.devices])
    teacher, student = (c.replace(dtype="float32") for c in (plan.teacher, plan.student))
    rows, length = spec.train.rows, spec.train.length
    kl = spec.loss == "kl"
    loss = pp.loss_config(spec.loss, spec.loss_chunk)
    one_chunk = pp.loss_config(spec.loss, length)
    widths = [w for c in (teacher, student) for w in (c.hidden_size, c.intermediate_size)]
    widths += [w // plan.mesh[2] for w in widths if w % plan.mesh[2] == 0]  # tp-sharded features
    t_base, t_next = _depth_points(teacher.num_hidden_layers)
    s_base, s_next = _depth_points(student.num_hidden_layers)
    t0 = time.perf_counter()

    def train_at(lt: int, ls: int):
        t_cfg = teacher.replace(num_hidden_layers=lt) if kl else None
        s_cfg = student.replace(num_hidden_layers=ls)
        lowered = pp.lower_train_step(t_cfg, s_cfg, mesh, rows, length, loss)
        flops_from = pp.lower_train_step(t_cfg, s_cfg, mesh, rows, length, one_chunk)
        return pp.measure(lowered, flops_from)

    base, hlo = train_at(t_base, s_base)
    sharded_rows = plan.mesh[0] * plan.mesh[1] > 1
    unsharded = ["train step"] if sharded_rows and pp.unsharded_batch(hlo, rows, length, widths) else []
    train_depths = [(t_base if kl else None, s_base)]
    deeper = [((t_next, s_base), teacher.num_hidden_layers - t_base, "teacher")] if kl and t_next else []
    deeper += [((t_base if kl else None, s_next), student.num_hidden_layers - s_base, "student")] if s_next else []
    shrinking: list[str] = []  # programs whose temp bytes fell when a layer was added

    def extended(name: str, cost, more: list[tuple[Any, int, str]]):
        shrinking.extend(f"{name} (one more {model} layer)" for d, _, model in more if d.temp_bytes < cost.temp_bytes)
        return pp.extrapolate(cost, [(d, n) for d, n, _ in more])

    train = extended("train step", base, [(train_at(lt, ls)[0], n, model) for (lt, ls), n, model in deeper])
    train_depths += [depths for depths, _, _ in deeper]

    def generation_at(lt: int):
        t_cfg = teacher.replace(num_hidden_layers=lt)
        prefill = pp.measure(pp.lower_prefill(t_cfg, mesh, plan.gen_rows, plan.prompt_bucket, plan.cache_len))
        decode = pp.measure(pp.lower_decode_step(t_cfg, mesh, plan.gen_rows, plan.cache_len))[0]
        return prefill, decode

    (prefill, hlo), decode = generation_at(t_base)
    if sharded_rows and pp.unsharded_batch(hlo, plan.gen_rows, plan.prompt_bucket, widths):
        unsharded.append("prefill")
    if t_next:
        (deeper_prefill, _), deeper_decode = generation_at(t_next)
        extra_layers = teacher.num_hidden_layers - t_base
        prefill = extended("prefill", prefill, [(deeper_prefill, extra_layers, "teacher")])
        decode = extended("decode step", decode, [(deeper_decode, extra_layers, "teacher")])
    return Compiled(train, prefill, decode, tuple(train_depths), (t_base,) + ((t_next,) if t_next else ()),
                    bool(deeper) or t_next is not None, tuple(unsharded), tuple(shrinking),
                    time.perf_counter() - t0)


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

    from read_jax import plan_programs as pp
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


# ----------------------------------------------------------------------------- report
def report(plan: Plan, compiled: Compiled) -> dict[str, Any]:
    mem = memory(plan, compiled)
    spec, chip = plan.spec, plan.chip
    ok = fits(mem.total, plan)
    suggestion = None
    if not ok:
        found = smallest_fitting_mesh(plan, compiled)
        if found:
            n, mesh, smem = found
            suggestion = {"devices": n, "mesh": dict(zip(("data", "fsdp", "tp"), mesh)), "total": smem.total,
                          "estimated": True}
    warnings = []
    if compiled.unsharded_batch:
        warnings.append(f"activations of the global batch on every device in the compiled "
                        f"{' and '.join(compiled.unsharded_batch)} (arrays [rows · length, width] or [rows, length, "
                        "width]): the batch is not sharded inside the layers, so activations do not shrink with "
                        "data × fsdp" + ("; the mesh suggestion, which assumes they do, is optimistic" if suggestion
                                          else ""))
    if compiled.shrinking:
        warnings.append(f"XLA's temp bytes fell when a layer was added ({', '.join(compiled.shrinking)}): the "
                        "compiler scheduled the deeper program differently, and the extrapolated activations / "
                        "workspace are unreliable (they are floored at 0)")
    return {
        "plan": plan.path, "name": spec.name, "dtype": spec.dtype, "loss": spec.loss,
        "accelerator": {k: v for k, v in dataclasses.asdict(chip).items() if k != "kinds"},
        "devices": plan.devices, "mesh": dict(zip(("data", "fsdp", "tp"), plan.mesh)),
        "params": {"teacher": plan.teacher.num_params(), "student": plan.student.num_params()},
        "layers": {"teacher": plan.teacher.num_hidden_layers, "student": plan.student.num_hidden_layers},
        "train": dataclasses.asdict(spec.train),
        "generation": dataclasses.asdict(spec.generation) | {"rows": plan.gen_rows, "cache_slots": plan.cache_len},
        "per_device_bytes": {"params": mem.params, "params_teacher": mem.params_teacher,
                             "params_student": mem.params_student, "optimizer": mem.optimizer,
                             "activations": mem.activations, "kv_cache": mem.kv_cache,
                             "generation_workspace": mem.generation_workspace, "total": mem.total},
        "sources": MEMORY_SOURCES | {
            "total": "params + optimizer + max(activations, kv_cache + generation_workspace)",
            "xla": "XLA:CPU of the float32 programs on fake CPU devices, temp bytes scaled to the plan's dtype"
                   + ("; per-layer figures extrapolated linearly from the compiled depths" if compiled.extrapolated
                      else "")},
        "compiled_depths": {"train": [list(d) for d in compiled.train_depths],
                            "generation": list(compiled.generation_depths)},
        "extrapolated": compiled.extrapolated,
        "compile_s": compiled.compile_s,
        "flops_per_token": flops_per_token(plan, compiled),
        "estimate": (est := estimate(plan, compiled, mem)),
        "est_tokens_per_s": est["train_tokens_per_s"],
        "hbm_bytes": chip.hbm_bytes, "limit_bytes": (1 - spec.margin) * chip.hbm_bytes, "margin": spec.margin,
        "fits": ok, "suggestion": suggestion, "warnings": warnings,
    }


def _gib(x: float) -> str:
    return f"{x / GIB:,.2f} GiB"


def _mesh_text(mesh: Mapping[str, int]) -> str:
    return f"data {mesh['data']} × fsdp {mesh['fsdp']} × tp {mesh['tp']}"


def format_report(r: Mapping[str, Any]) -> str:
    acc, b, f, e = r["accelerator"], r["per_device_bytes"], r["flops_per_token"], r["estimate"]
    tr, gen, src = r["train"], r["generation"], r["sources"]
    depths = ", ".join(f"({t if t is not None else '-'}, {s})" for t, s in r["compiled_depths"]["train"])
    depths = f"train step at (teacher, student) layers {depths}; prefill and decode step at teacher layers " \
             + ", ".join(map(str, r["compiled_depths"]["generation"]))
    memory_rows = (("parameters (teacher + student)", "params", src["params"]),
                   ("optimizer state", "optimizer", src["optimizer"]),
                   ("activations (train step)", "activations", "XLA:CPU temp bytes"),
                   ("KV cache (generation)", "kv_cache", src["kv_cache"]),
                   ("generation workspace", "generation_workspace", "XLA:CPU temp bytes"),
                   ("peak", "total", src["total"]))
    flop_rows = (("KD train step (per trained token)", "train",
                  "6 N_student + 2 N_teacher" if r["loss"] == "kl" else "6 N_student"),
                 ("decode (per generated token)", "decode", "2 N_teacher"),
                 ("prefill (per prompt token)", "prefill", "2 N_teacher, output head on the last position only"))
    lines = [
        f"plan {r['plan']}" + (f"  ({r['name']})" if r["name"] else ""),
        f"  teacher {r['params']['teacher'] / 1e9:.2f} B parameters ({r['layers']['teacher']} layers), student "
        f"{r['params']['student'] / 1e9:.2f} B ({r['layers']['student']} layers), {r['dtype']}, loss {r['loss']}",
        f"  {r['devices']} × {acc['name']} ({acc['peak_flops'] / 1e12:.0f} TFLOP/s bf16, "
        f"{acc['hbm_bandwidth'] / 1e9:,.0f} GB/s, {_gib(acc['hbm_bytes'])} HBM per chip), mesh {_mesh_text(r['mesh'])}",
        f"  train batch {tr['rows']} × {tr['length']} tokens; generation {gen['batch']} prompts ({gen['rows']} rows)"
        f" × {gen['prompt_length']} prompt + {gen['new_tokens']} new tokens ({gen['cache_slots']} cache slots)",
        f"  compiled on {r['devices']} fake CPU devices from abstract arrays ({r['compile_s']:.0f} s): {depths}"
        + ("; per-layer figures extrapolated linearly to full depth" if r["extrapolated"] else " (full depth)"),
        "",
        "per-device memory",
        *(f"  {label:<30} {_gib(b[key]):>14}   {source}" for label, key, source in memory_rows),
        "  (XLA:CPU figures: float32 programs, temp bytes scaled to the plan's dtype; XLA:CPU upcasts bf16 matmuls)",
        "",
        "FLOPs per token                      XLA cost analysis    analytic",
        *(f"  {label:<33} {f[key]['xla'] / 1e9:12.2f} G   {f[key]['analytic'] / 1e9:9.2f} G  ({note})"
          for label, key, note in flop_rows),
        "  (N: parameters that multiply, without the input embedding; XLA's count includes attention)",
        "",
        f"estimate on {acc['name']} (roofline per device: max(FLOPs / peak, bytes / HBM bandwidth); collectives not "
        "modelled: an upper bound)",
        f"  KD train step   {e['train_step_s'] * 1e3:10.1f} ms ({e['train_bound']}-bound)  "
        f"{e['train_tokens_per_s']:12,.0f} trained tokens/s",
        f"  decode step     {e['decode_step_s'] * 1e3:10.2f} ms ({e['decode_bound']}-bound)  "
        f"{e['decode_tokens_per_s']:12,.0f} generated tokens/s at {gen['batch']} prompts",
        f"  generation call {e['generation_call_s']:10.2f} s  (prefill {e['prefill_s'] * 1e3:.1f} ms, "
        f"{e['prefill_bound']}-bound)  {e['generation_tokens_per_s']:9,.0f} generated tokens/s",
        "",
        f"verdict: {'FITS' if r['fits'] else 'DOES NOT FIT'} — peak {_gib(b['total'])} per chip against "
        f"{_gib(r['limit_bytes'])} ({_gib(r['hbm_bytes'])} HBM less a {r['margin']:.0%} margin); memory figures from "
        "XLA:CPU's analysis of the compiled programs (activations, workspace) and exact shard sizes (the rest)",
    ]
    s = r["suggestion"]
    if s:
        lines.append(f"  smallest mesh that would fit (estimate): {_mesh_text(s['mesh'])} = {s['devices']} chips, "
                     f"peak {_gib(s['total'])}; confirm with --devices {s['devices']} and that mesh")
    elif not r["fits"]:
        lines.append(f"  no mesh of data 1 × fsdp × tp (tp ≤ {MAX_TP}) fits up to {MAX_SEARCH_CHIPS} chips at "
                     f"{tr['rows']} training rows")
    lines += [f"warning: {w}" for w in r["warnings"]]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="read-jax plan", description=__doc__.split("\n")[0])
    parser.add_argument("config", help="plan file (experiments/plans/*.yaml)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--accelerator", help="chip of the table (v4, v5e, v5p, v6e, a100, h100, h200)")
    parser.add_argument("--devices", type=int, help="number of chips (the mesh's -1 axis absorbs it)")
    args = parser.parse_args(argv)
    spec = load_spec(args.config)
    chip = accelerator(args.accelerator if args.accelerator else spec.accelerator,
                       "--accelerator" if args.accelerator else f"{args.config}: accelerator")
    devices, mesh = resolve_mesh(spec, args.config, args.devices)
    if not cpu_devices_ready(devices):
        return plan_in_child(argv, devices)
    plan = resolve(spec, args.config, devices, mesh, chip)
    result = report(plan, compile_plan(plan))
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0
