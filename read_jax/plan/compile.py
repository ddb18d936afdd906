"""The resolved plan (models, chip, mesh) and the XLA figures of the programs compiled for it.

The programs are compiled at reduced depths on fake CPU devices and extrapolated to full depth
(the package docstring says why); jax is imported only inside the functions that need it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from read_jax.accelerators import Accelerator
from read_jax.errors import ReadJaxError
from read_jax.plan.spec import PlanSpec


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

    train: Any  # programs.ProgramCost
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

    from read_jax.plan import programs as pp
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
