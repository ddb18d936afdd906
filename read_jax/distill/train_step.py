"""One jitted, sharded distillation train step over pure pytrees, and a small stateful wrapper.

The pure function (`make_train_step`)::

    step_fn(params, opt_state, batch[, teacher_params]) -> (params, opt_state, metrics)

- ``params``: the student's parameters as a nested dict of arrays (``nnx.to_pure_dict``);
  ``opt_state``: the optax state of the student only; both are donated.
- ``batch``: dict of arrays with a leading batch axis (see `read_jax.distill.batching`):
  ``input_ids`` int32 [B, T], ``attention_mask`` [B, T], ``labels`` int32 [B, T] (the token each
  position predicts, ``IGNORE_INDEX`` where none), ``loss_mask`` [B, T] (1 on positions whose
  label is a response token); optional ``positions`` [B, T], ``teacher_logits`` [B, T, V],
  ``topk_ids`` / ``topk_logprobs`` [B, T, k] (cached teacher top-k, aligned with labels).
- ``teacher_params``: the teacher's parameters when the loss needs teacher logits and the batch
  does not carry them; the teacher forward then runs inside the same program under
  ``stop_gradient`` (its activations never enter the backward pass).
- ``metrics``: ``{name: (sum, count)}`` float32 pairs, computed on the global batch, so a
  token-weighted average across devices (and micro-steps, by adding pairs) is ``sum / count``.

Loss and temperature schedules are evaluated at the optimizer step (number of applied updates,
the step the learning-rate schedule sees as well; with gradient accumulation every micro-batch
of one update uses the same weights).

`Distiller` wraps it: splits the NNX modules once, places parameters with the rule-table
shardings of `read_jax.sharding`, jits the step once with explicit in/out shardings on the
('data', 'fsdp', 'tp') mesh, and exposes ``params`` / ``opt_state`` for checkpointing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from read_jax import backend
from read_jax.distill.chunked import HiddenTeacher, kd_loss_from_hidden
from read_jax.distill.losses import LossConfig, Metrics, check_topk_ids, check_vocab, kd_loss, token_mask
from read_jax.distributed import to_host
from read_jax.errors import ReadJaxError
from read_jax.sharding import BATCH_AXES, make_mesh, place, state_shardings

Array = jax.Array
Params = dict[str, Any]
BATCH_KEYS = ("input_ids", "attention_mask", "labels", "loss_mask", "positions", "teacher_logits", "topk_ids",
              "topk_logprobs")


# ----------------------------------------------------------------------------- optimizer
@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """AdamW over the student with a learning-rate schedule, clipping and accumulation.

    ``schedule``: "constant", "cosine" or "linear" decay after ``warmup_steps`` of linear warmup,
    over ``decay_steps`` updates to ``end_lr_fraction × learning_rate``; or pass any optax
    schedule as ``learning_rate``.  Weight decay applies to matrices (ndim ≥ 2) only.
    ``accumulation_steps`` > 1 wraps the optimizer in ``optax.MultiSteps``: one update every
    that many calls, on the mean gradient.
    """

    learning_rate: float | Callable[[Any], Any] = 1e-4
    schedule: str = "constant"
    warmup_steps: int = 0
    decay_steps: int | None = None
    end_lr_fraction: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    accumulation_steps: int = 1

    def __post_init__(self) -> None:
        if not callable(self.learning_rate) and not self.learning_rate >= 0:
            raise ReadJaxError(f"optimizer learning_rate must be >= 0, got {self.learning_rate}")
        if self.warmup_steps < 0:
            raise ReadJaxError(f"optimizer warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.schedule not in ("constant", "cosine", "linear"):
            raise ReadJaxError(f"optimizer schedule must be constant / cosine / linear, got {self.schedule!r}")
        if self.schedule != "constant" and not callable(self.learning_rate) and not self.decay_steps:
            raise ReadJaxError(f"optimizer schedule {self.schedule!r} needs decay_steps > 0")
        if int(self.accumulation_steps) < 1:
            raise ReadJaxError(f"accumulation_steps must be >= 1, got {self.accumulation_steps}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ReadJaxError(f"max_grad_norm must be > 0 or None, got {self.max_grad_norm}")

    def lr_schedule(self) -> Callable[[Any], Any]:
        if callable(self.learning_rate):
            return self.learning_rate
        lr, w = float(self.learning_rate), int(self.warmup_steps)
        end = lr * float(self.end_lr_fraction)
        if self.schedule == "constant":
            return optax.linear_schedule(0.0, lr, w) if w else optax.constant_schedule(lr)
        if self.schedule == "cosine":
            return optax.warmup_cosine_decay_schedule(0.0, lr, w, w + int(self.decay_steps), end)
        decay = optax.linear_schedule(lr, end, int(self.decay_steps))
        return optax.join_schedules([optax.linear_schedule(0.0, lr, w), decay], [w]) if w else decay


class StepCountState(NamedTuple):
    """Number of optimizer updates applied (inside MultiSteps it only advances on real updates)."""

    step: Array


def step_counter() -> optax.GradientTransformation:
    def init(params):
        del params
        return StepCountState(step=jnp.zeros((), jnp.int32))

    def update(updates, state, params=None):
        del params
        return updates, StepCountState(step=optax.safe_int32_increment(state.step))

    return optax.GradientTransformation(init, update)


def make_optimizer(config: OptimizerConfig) -> optax.GradientTransformation:
    parts = [step_counter()]
    if config.max_grad_norm is not None:
        parts.append(optax.clip_by_global_norm(float(config.max_grad_norm)))
    parts.append(optax.adamw(config.lr_schedule(), b1=config.b1, b2=config.b2, eps=config.eps,
                             weight_decay=config.weight_decay,
                             mask=lambda p: jax.tree.map(lambda x: jnp.ndim(x) >= 2, p)))
    tx = optax.chain(*parts)
    if config.accumulation_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=int(config.accumulation_steps))
    return tx


def optimizer_step(opt_state: Any) -> Array:
    """The number of optimizer updates applied so far (int32 scalar), read from ``opt_state``."""
    found = [x for x in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, StepCountState))
             if isinstance(x, StepCountState)]
    if len(found) != 1:
        raise ReadJaxError("optimizer state was not built by make_optimizer (no unique step counter)")
    return found[0].step


# ----------------------------------------------------------------------------- the pure step
def _token_metrics(batch: Mapping[str, Array], mask: Array) -> Metrics:
    attn = batch["attention_mask"].astype(jnp.float32)
    one = jnp.ones((), jnp.float32)
    total = jnp.asarray(attn.size, jnp.float32)
    label = jnp.sum(batch["loss_mask"].astype(jnp.float32) * attn)
    return {"tokens/label": (label, one), "tokens/prompt": (jnp.sum(attn) - label, one),
            "tokens/padding": (total - jnp.sum(attn), one), "tokens/loss": (jnp.sum(mask), one)}


def make_loss_fn(graphdef: nnx.GraphDef, loss_config: LossConfig,
                 teacher_graphdef: nnx.GraphDef | None = None) -> Callable:
    """``loss_fn(params, batch, step, teacher_params=None) -> (loss, metrics)`` (pure)."""

    def loss_fn(params: Params, batch: Mapping[str, Array], step: Array, teacher_params: Params | None = None):
        model = nnx.merge(graphdef, params)
        attn = batch["attention_mask"]
        positions = batch.get("positions")
        mask = token_mask(batch["labels"], batch["loss_mask"], attn, loss_config.ignore_index)
        teacher_logits = batch.get("teacher_logits")
        teacher = None
        if teacher_params is not None and teacher_logits is None and loss_config.needs_teacher_logits:
            tmodel = nnx.merge(teacher_graphdef, jax.lax.stop_gradient(teacher_params))
            t_hidden, _ = tmodel.hidden_states(batch["input_ids"], attn, positions)
            teacher = HiddenTeacher(jax.lax.stop_gradient(t_hidden), jax.lax.stop_gradient(tmodel.output_kernel()))
        kw = dict(topk_ids=batch.get("topk_ids"), topk_logprobs=batch.get("topk_logprobs"), step=step)
        if loss_config.chunk_size is None:
            logits = model(batch["input_ids"], attn, positions)
            if teacher is not None:
                teacher_logits = tmodel.logits_from_hidden(teacher.hidden)
            return kd_loss(loss_config, logits, batch["labels"], mask, teacher_logits=teacher_logits, **kw)
        hidden, _ = model.hidden_states(batch["input_ids"], attn, positions)
        return kd_loss_from_hidden(loss_config, hidden, model.output_kernel(), batch["labels"], mask,
                                   teacher=teacher, teacher_logits=teacher_logits, **kw)

    return loss_fn


def make_train_step(graphdef: nnx.GraphDef, loss_config: LossConfig, tx: optax.GradientTransformation,
                    teacher_graphdef: nnx.GraphDef | None = None, lr_schedule: Callable | None = None) -> Callable:
    """The pure step ``(params, opt_state, batch, teacher_params=None) -> (params, opt_state, metrics)``."""
    loss_fn = make_loss_fn(graphdef, loss_config, teacher_graphdef)

    def train_step(params: Params, opt_state: Any, batch: Mapping[str, Array], teacher_params: Params | None = None):
        step = optimizer_step(opt_state)
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, step, teacher_params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        one = jnp.ones((), jnp.float32)
        metrics = dict(metrics)
        metrics["grad_norm"] = (optax.global_norm(grads).astype(jnp.float32), one)
        if lr_schedule is not None:
            metrics["learning_rate"] = (jnp.asarray(lr_schedule(step), jnp.float32), one)
        mask = token_mask(batch["labels"], batch["loss_mask"], batch["attention_mask"], loss_config.ignore_index)
        metrics.update(_token_metrics(batch, mask))
        return params, opt_state, metrics

    return train_step


# ----------------------------------------------------------------------------- shardings
def params_shardings(mesh: Mesh, module: nnx.Module) -> Params:
    """Pure-dict pytree of NamedShardings for ``nnx.to_pure_dict(nnx.state(module))``."""
    return nnx.to_pure_dict(state_shardings(mesh, nnx.state(module)))


def opt_state_shardings(mesh: Mesh, abstract_opt_state: Any, params_sh: Params) -> Any:
    """Sub-trees of the optimizer state shaped like the params get the params' shardings; the rest
    (counters, scalars) is replicated."""
    treedef = jax.tree.structure(params_sh)
    replicated = NamedSharding(mesh, P())

    def like_params(x: Any) -> bool:
        return isinstance(x, dict) and jax.tree.structure(x) == treedef

    return jax.tree.map(lambda x: params_sh if like_params(x) else replicated, abstract_opt_state,
                        is_leaf=like_params)


def _check_batch(batch: Mapping[str, Any], loss_config: LossConfig, vocab: int, has_teacher: bool,
                 rows_multiple: int) -> None:
    unknown = sorted(set(batch) - set(BATCH_KEYS))
    if unknown:
        raise ReadJaxError(f"unknown batch key(s) {unknown}; expected some of {list(BATCH_KEYS)}")
    missing = [k for k in ("input_ids", "attention_mask", "labels", "loss_mask") if k not in batch]
    if missing:
        raise ReadJaxError(f"batch lacks {missing}")
    b = np.shape(batch["input_ids"])[0]
    if b % rows_multiple:
        raise ReadJaxError(f"batch of {b} rows does not divide over the mesh's {rows_multiple} data shards")
    if "teacher_logits" in batch:
        check_vocab(vocab, np.shape(batch["teacher_logits"])[-1])
    elif loss_config.needs_teacher_logits and not has_teacher:
        raise ReadJaxError("the loss uses teacher logits (kl / reverse_kl / logit_mse): give Distiller a teacher "
                           "or put teacher_logits in the batch")
    if loss_config.needs_topk:
        if "topk_ids" not in batch or "topk_logprobs" not in batch:
            raise ReadJaxError("the loss uses topk_kl: the batch needs topk_ids and topk_logprobs")
        check_topk_ids(vocab, np.asarray(batch["topk_ids"]))


# ----------------------------------------------------------------------------- stateful wrapper
class Distiller:
    """Stateful wrapper: ``Distiller(student, teacher, loss_config, optimizer_config, mesh).step(batch)``.

    - ``params`` / ``opt_state``: the current student parameters (pure nested dict) and optax
      state, sharded on ``mesh``; save them with orbax; restore into targets built from
      ``shardings()`` and hand them back with `load_state`.
    - ``student``: an NNX module view of the current parameters (for probes / sampling / export).
    - ``step(batch)`` runs one compiled step (one compile per batch shape) and returns the metrics
      as floats: token-weighted means for loss terms, totals for ``tokens/*``.
    The teacher is never donated, never updated and never part of the state.
    ``compiler_options``: XLA options for the step (e.g. ``{"xla_backend_optimization_level": 0}``
    compiles tiny test models faster on CPU).
    """

    def __init__(self, student: nnx.Module, teacher: nnx.Module | None = None,
                 loss_config: LossConfig | None = None, optimizer_config: OptimizerConfig | None = None,
                 mesh: Mesh | None = None, compiler_options: Mapping[str, Any] | None = None):
        self.loss_config = loss_config or LossConfig()
        self.optimizer_config = optimizer_config or OptimizerConfig()
        self.mesh = mesh if mesh is not None else make_mesh((1, 1, 1), jax.local_devices()[:1])
        self.vocab_size = int(student.config.vocab_size)
        self.use_teacher = teacher is not None and self.loss_config.needs_teacher_logits
        if self.use_teacher:
            check_vocab(self.vocab_size, teacher.config.vocab_size)
        self.graphdef, state = nnx.split(student)
        self._params_sh = params_shardings(self.mesh, student)
        self.params = jax.tree.map(place, nnx.to_pure_dict(state), self._params_sh)
        self.tx = make_optimizer(self.optimizer_config)
        self._opt_sh = opt_state_shardings(self.mesh, jax.eval_shape(self.tx.init, self.params), self._params_sh)
        self.opt_state = jax.jit(self.tx.init, out_shardings=self._opt_sh)(self.params)
        self.teacher_graphdef = self.teacher_params = None
        if self.use_teacher:
            self.teacher_graphdef, tstate = nnx.split(teacher)
            t_sh = params_shardings(self.mesh, teacher)
            self.teacher_params = jax.tree.map(place, nnx.to_pure_dict(tstate), t_sh)
        fn = make_train_step(self.graphdef, self.loss_config, self.tx, self.teacher_graphdef,
                             self.optimizer_config.lr_schedule())
        replicated = NamedSharding(self.mesh, P())
        batch_sh = NamedSharding(self.mesh, P(BATCH_AXES))
        in_sh: tuple = (self._params_sh, self._opt_sh, batch_sh)
        if self.use_teacher:
            in_sh = in_sh + (params_shardings(self.mesh, teacher),)
        self.train_step = jax.jit(fn, in_shardings=in_sh, out_shardings=(self._params_sh, self._opt_sh, replicated),
                                  donate_argnums=(0, 1), compiler_options=dict(compiler_options or {}) or None)
        self._rows_multiple = int(np.prod([self.mesh.shape[a] for a in BATCH_AXES]))

    # -- state
    @property
    def step_count(self) -> int:
        """Optimizer updates applied so far."""
        return int(optimizer_step(self.opt_state))

    @property
    def student(self) -> nnx.Module:
        return nnx.merge(self.graphdef, self.params)

    def shardings(self) -> dict[str, Any]:
        """Target shardings of ``state()`` (for orbax restore with explicit shardings)."""
        return {"params": self._params_sh, "opt_state": self._opt_sh}

    def state(self) -> dict[str, Any]:
        return {"params": self.params, "opt_state": self.opt_state}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.params = jax.device_put(state["params"], self._params_sh)
        self.opt_state = jax.device_put(state["opt_state"], self._opt_sh)

    # -- stepping
    def place_batch(self, batch: Mapping[str, Any]) -> dict[str, Array]:
        _check_batch(batch, self.loss_config, self.vocab_size, self.use_teacher, self._rows_multiple)
        sh = NamedSharding(self.mesh, P(BATCH_AXES))
        # every process holds the whole batch (the same prompts everywhere) and places its own rows
        return {k: place(np.asarray(v) if not isinstance(v, jax.Array) else v, sh) for k, v in batch.items()}

    def step_raw(self, batch: Mapping[str, Any]) -> Metrics:
        """One step; returns the (sum, count) metric pairs as device arrays (no host sync)."""
        placed = self.place_batch(batch)
        args = (self.params, self.opt_state, placed)
        if self.use_teacher:
            args = args + (self.teacher_params,)
        with backend.on_platform(backend.platform_of(self.mesh)):  # CPU-only kernels only on a CPU mesh
            self.params, self.opt_state, metrics = self.train_step(*args)
        return metrics

    def step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        return summarize(self.step_raw(batch))


def summarize(metrics: Metrics) -> dict[str, float]:
    """(sum, count) pairs -> floats (sum / max(count, 1))."""
    host = to_host(metrics)
    return {k: float(s) / max(float(c), 1.0) if not k.startswith("tokens/") else float(s)
            for k, (s, c) in host.items()}


def add_metrics(a: Metrics, b: Metrics) -> Metrics:
    """Combine two metric dicts (e.g. micro-steps): sums and counts add."""
    out = dict(a)
    for k, (s, c) in b.items():
        out[k] = (out[k][0] + s, out[k][1] + c) if k in out else (s, c)
    return out
