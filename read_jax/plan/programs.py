"""Weight-free models and the programs `read-jax plan` compiles from them.

Everything here is abstract: modules come from ``nnx.eval_shape`` (``jax.ShapeDtypeStruct``
leaves, no parameter is ever allocated), and each array carries the sharding the rule table
of `read_jax.sharding` gives it.  The same builders serve two purposes:
- on a *real* mesh (fake CPU devices) they feed ``jax.jit(...).lower(...)`` and
  ``.compile()``: the project's own KD train step (`make_train_step`, wired like
  `Distiller`), the sampler's prefill (`read_jax.sampling.decode.prefill`) and one decode step
  (the model's forward pass on one token against a full cache, as the decode loop runs it on an
  accelerator);
- on an ``AbstractMesh`` (no devices at all) they give exact per-device shard sizes of the
  parameters, the optimizer state and the KV cache, for any mesh shape, instantly.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import time
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec as P

from read_jax.distill.losses import LossConfig
from read_jax.distill.train_step import (
    OptimizerConfig, make_optimizer, make_train_step, opt_state_shardings, params_shardings,
)
from read_jax.models.config import DecoderConfig
from read_jax.models.decoder import Decoder, KVCache
from read_jax.sampling.decode import prefill
from read_jax.sharding import BATCH_AXES, MESH_AXES, batch_sharding, named_sharding

AnyMesh = Mesh | AbstractMesh
# LLVM optimisation only changes the speed of code a plan never runs: memory and cost
# analyses were identical at level 0, and compiles faster (docs/benchmarks.md).
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}
BATCH_FIELDS = ("input_ids", "attention_mask", "labels", "loss_mask")


def abstract_mesh(shape: tuple[int, int, int]) -> AbstractMesh:
    """A ('data', 'fsdp', 'tp') mesh without devices, for shard-size arithmetic."""
    return AbstractMesh(tuple(shape), MESH_AXES)


def batch_shards(mesh: AnyMesh) -> int:
    return math.prod(mesh.shape[a] for a in BATCH_AXES)


@functools.lru_cache(maxsize=32)
def abstract_model(config: DecoderConfig) -> Decoder:
    """The decoder with ``ShapeDtypeStruct`` leaves (nothing allocated)."""
    return nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0)))


def _placed(tree: Any, shardings: Any) -> Any:
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def abstract_params(config: DecoderConfig, mesh: AnyMesh) -> tuple[nnx.GraphDef, dict[str, Any]]:
    """(graphdef, pure-dict params of placed ``ShapeDtypeStruct`` s), as `Distiller` splits a model."""
    module = abstract_model(config)
    graphdef, state = nnx.split(module)
    return graphdef, _placed(nnx.to_pure_dict(state), params_shardings(mesh, module))


def abstract_opt_state(params: dict[str, Any], mesh: AnyMesh, optimizer: OptimizerConfig) -> Any:
    """The optax state `Distiller` builds for ``params`` (AdamW moments in the params' dtype)."""
    tx = make_optimizer(optimizer)
    state = jax.eval_shape(tx.init, params)
    return _placed(state, opt_state_shardings(mesh, state, jax.tree.map(lambda x: x.sharding, params)))


def abstract_batch(mesh: AnyMesh, rows: int, length: int) -> dict[str, jax.ShapeDtypeStruct]:
    sh = NamedSharding(mesh, P(BATCH_AXES))
    return {k: jax.ShapeDtypeStruct((rows, length), jnp.int32, sharding=sh) for k in BATCH_FIELDS}


def abstract_decode_cache(config: DecoderConfig, mesh: AnyMesh, batch: int, length: int) -> KVCache:
    """The KV cache for ``batch`` rows and ``length`` slots, placed as the sampler pins it
    (`KVCache.constrained`)."""
    dt = jnp.dtype(config.dtype)
    kvh, hd = config.num_key_value_heads, config.head_dim

    def placed(shape: tuple[int, ...], axes: tuple[str, ...]) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct(shape, dt, sharding=named_sharding(mesh, axes, shape))

    n = config.num_hidden_layers
    return KVCache(
        keys=tuple(placed((batch, kvh, hd, length), KVCache.KEY_AXES) for _ in range(n)),
        values=tuple(placed((batch, kvh, length, hd), KVCache.VALUE_AXES) for _ in range(n)),
        key_mask=jax.ShapeDtypeStruct((batch, length), jnp.bool_, sharding=batch_sharding(mesh, 2)),
        index=jax.ShapeDtypeStruct((), jnp.int32, sharding=NamedSharding(mesh, P())))


def shard_bytes(tree: Any) -> int:
    """Bytes one device holds of a tree of placed ``ShapeDtypeStruct`` s (the largest shard)."""
    return sum(math.prod(x.sharding.shard_shape(x.shape)) * jnp.dtype(x.dtype).itemsize
               for x in jax.tree.leaves(tree))


# ----------------------------------------------------------------------------- programs
def loss_config(loss: str, chunk_size: int | str | None) -> LossConfig:
    """``kl``: CE + forward KL (T = 1) with the teacher forward in the step; ``ce``: SFT only."""
    return LossConfig(ce=1.0, kl=1.0 if loss == "kl" else 0.0, chunk_size=chunk_size)


def lower_train_step(teacher: DecoderConfig | None, student: DecoderConfig, mesh: Mesh, rows: int, length: int,
                     loss: LossConfig, optimizer: OptimizerConfig = OptimizerConfig()) -> jax.stages.Lowered:
    """The project's KD step (`make_train_step`), jitted with `Distiller`'s shardings and donation.

    ``teacher`` None: no teacher forward inside the step (SFT on teacher text)."""
    sg, sp = abstract_params(student, mesh)
    opt = abstract_opt_state(sp, mesh, optimizer)
    tx = make_optimizer(optimizer)
    tg, tp = abstract_params(teacher, mesh) if teacher is not None else (None, None)
    fn = make_train_step(sg, loss, tx, tg, optimizer.lr_schedule())
    shardings = lambda tree: jax.tree.map(lambda x: x.sharding, tree)  # noqa: E731
    batch = abstract_batch(mesh, rows, length)
    args = (sp, opt, batch) + ((tp,) if tp is not None else ())
    jitted = jax.jit(fn, in_shardings=tuple(shardings(a) for a in args),
                     out_shardings=(shardings(sp), shardings(opt), NamedSharding(mesh, P())), donate_argnums=(0, 1))
    return jitted.lower(*args)


def lower_prefill(teacher: DecoderConfig, mesh: Mesh, batch: int, prompt: int, cache_len: int) -> jax.stages.Lowered:
    """The sampler's prefill program for a left-padded [batch, prompt] prompt batch."""
    graphdef, params = abstract_params(teacher, mesh)
    rows = batch_sharding(mesh, 2)
    ids = jax.ShapeDtypeStruct((batch, prompt), jnp.int32, sharding=rows)
    mask = jax.ShapeDtypeStruct((batch, prompt), jnp.bool_, sharding=rows)
    active = jax.ShapeDtypeStruct((batch,), jnp.bool_, sharding=batch_sharding(mesh, 1))
    return prefill.lower(graphdef, params, ids, mask, active, cache_len=cache_len, mesh=mesh)


@functools.partial(jax.jit, static_argnames=("graphdef", "mesh"), donate_argnames=("cache",))
def _one_decode_step(graphdef, params, token, position, cache, *, mesh):
    model = nnx.merge(graphdef, params)
    logits, cache = model(token[:, None], positions=position[:, None], cache=cache)
    return logits[:, 0], cache.constrained(mesh)


def lower_decode_step(teacher: DecoderConfig, mesh: Mesh, batch: int, cache_len: int) -> jax.stages.Lowered:
    """One step of the sampler's decode loop (the plain weight layout, as on an accelerator) over a full cache."""
    graphdef, params = abstract_params(teacher, mesh)
    rows = batch_sharding(mesh, 1)
    token = jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=rows)
    cache = abstract_decode_cache(teacher, mesh, batch, cache_len)
    return _one_decode_step.lower(graphdef, params, token, token, cache, mesh=mesh)


# ----------------------------------------------------------------------------- measuring
@dataclasses.dataclass(frozen=True)
class ProgramCost:
    """One compiled program: XLA's per-device memory analysis and its global FLOP count."""

    temp_bytes: float
    argument_bytes: float
    output_bytes: float
    alias_bytes: float
    flops: float
    compile_s: float



_LINEAR_FIELDS = ("temp_bytes", "argument_bytes", "output_bytes", "alias_bytes", "flops")


def extrapolate(base: ProgramCost, deeper: Iterable[tuple[ProgramCost, int]]) -> ProgramCost:
    """``base`` plus, for each (program compiled one layer deeper in one model, that model's layers
    left), layers × the per-layer difference: linear in each model's depth.  Memory and FLOP
    fields only; the compile time stays ``base``'s."""
    deeper = list(deeper)
    return dataclasses.replace(base, **{
        f: getattr(base, f) + sum(n * (getattr(d, f) - getattr(base, f)) for d, n in deeper) for f in _LINEAR_FIELDS})


def measure(lowered: jax.stages.Lowered, flops_from: jax.stages.Lowered | None = None) -> tuple[ProgramCost, str]:
    """Compile ``lowered``; its memory analysis, the FLOPs of ``flops_from`` (default: itself)
    from the unpartitioned lowered module, and the compiled per-device HLO text.

    FLOPs come from the lowered (global, pre-partitioning) module because XLA's cost analysis
    counts a while loop's body once: a program with a ``lax.scan`` (the chunked loss) must be
    counted on a loop-free twin (see `read_jax.plan`)."""
    t0 = time.perf_counter()
    compiled = lowered.compile(compiler_options=COMPILER_OPTIONS)
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    flops = float((flops_from or lowered).cost_analysis().get("flops", 0.0))
    cost = ProgramCost(float(mem.temp_size_in_bytes), float(mem.argument_size_in_bytes),
                       float(mem.output_size_in_bytes), float(mem.alias_size_in_bytes), flops, compile_s)
    return cost, compiled.as_text()


def unsharded_batch(hlo_text: str, rows: int, length: int, widths: Iterable[int]) -> bool:
    """True when a per-device program holds activations of the *global* batch: an array shaped
    [rows·length, width] or [rows, length, width] for a model width (hidden or MLP size)."""
    lead = rf"(?:{rows * length}|{rows},{length})"
    return re.search(rf"\[{lead},(?:{'|'.join(str(w) for w in sorted(set(widths)))})\]", hlo_text) is not None
