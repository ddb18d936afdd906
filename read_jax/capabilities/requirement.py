"""Requirement identification r_τ (method.md §2).

Three sources, in the order `identify_requirement` consults them:

(a) the task card, when it states r_τ;
(b) a learned identifier g_φ(card) = softmax(MLP(encoder(card text))), trained across
    auxiliary tasks on intervention records by minimising
    Σ (ΔU − a·g_φᵀΔs)² + λ_ent · H(g_φ);
(c) a per-task simplex-constrained least-squares fit ΔU ≈ a·rᵀΔs over that task's
    own intervention records (accelerated projected gradient, exact projection).

Scale.  The paper's objective fixes a = 1.  Δs (probe scores, e.g. log-likelihoods)
and ΔU (accuracy) live in different units, so by default we also fit a positive
scale a (`free_scale=True`): a non-negative least-squares fit g = a·r, r = g / Σg,
and for g_φ a softplus scale head.  `free_scale=False` is the literal objective.

Interventions are short distillations with random sparse allocations (support 2,
Dirichlet α = 1): `sample_intervention_allocations`.  The encoder is a deterministic
hashed character n-gram featuriser (no downloads, stable across processes).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from read_jax.capabilities.registry import CapabilityRegistry, TaskCard
from read_jax.errors import ReadJaxError


# --------------------------------------------------------------------------- interventions
@dataclass(frozen=True)
class InterventionRecord:
    """One short distillation: allocation w, profile change Δs, utility change ΔU on `task`."""

    task: str
    allocation: tuple[float, ...]
    delta_s: tuple[float, ...]
    delta_u: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "allocation", tuple(float(x) for x in self.allocation))
        object.__setattr__(self, "delta_s", tuple(float(x) for x in self.delta_s))
        if len(self.allocation) != len(self.delta_s):
            raise ReadJaxError("allocation and delta_s must have the same length")
        if not np.isfinite(self.delta_u) or not np.all(np.isfinite(self.delta_s)):
            raise ReadJaxError("intervention record values must be finite")


def center_per_task(records: Sequence[InterventionRecord]) -> list[InterventionRecord]:
    """Records with each task's mean ΔU and mean Δs subtracted: fitting ΔU ≈ a·gᵀΔs on them is fitting
    ΔU ≈ b_τ + a·gᵀΔs with a free intercept b_τ per task (the change every intervention on τ shares,
    e.g. from training on any data at all), which the paper's objective leaves out."""
    out = []
    for task in dict.fromkeys(r.task for r in records):
        own = [r for r in records if r.task == task]
        mu_u = float(np.mean([r.delta_u for r in own]))
        mu_s = np.mean([r.delta_s for r in own], axis=0)
        out += [InterventionRecord(task, r.allocation, tuple(np.asarray(r.delta_s) - mu_s), r.delta_u - mu_u)
                for r in own]
    return out


def sample_intervention_allocations(
    n: int, num_capabilities: int, seed: int | np.random.Generator = 0, support: int = 2, alpha: float = 1.0
) -> np.ndarray:
    """[n, C] random sparse allocations: `support` capabilities, weights ~ Dirichlet(alpha)."""
    if not (1 <= support <= num_capabilities):
        raise ReadJaxError(f"support must be in [1, {num_capabilities}], got {support}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    out = np.zeros((n, num_capabilities))
    for i in range(n):
        idx = rng.choice(num_capabilities, size=support, replace=False)
        out[i, idx] = rng.dirichlet(np.full(support, alpha))
    return out


def _stack(records: Sequence[InterventionRecord]) -> tuple[np.ndarray, np.ndarray]:
    if not records:
        raise ReadJaxError("no intervention records")
    ds = np.asarray([r.delta_s for r in records], dtype=np.float64)
    du = np.asarray([r.delta_u for r in records], dtype=np.float64)
    return ds, du


# --------------------------------------------------------------------------- (c) least squares
@jax.jit
def project_simplex(v: jax.Array) -> jax.Array:
    """Euclidean projection onto {x >= 0, Σx = 1} (sort-based, exact)."""
    v = jnp.asarray(v)
    n = v.shape[-1]
    u = jnp.sort(v)[::-1]
    css = jnp.cumsum(u) - 1.0
    j = jnp.arange(1, n + 1, dtype=v.dtype)
    cond = u - css / j > 0
    rho = jnp.max(jnp.where(cond, jnp.arange(n), 0))
    theta = css[rho] / (rho + 1.0)
    return jnp.maximum(v - theta, 0.0)


def _fista(ds: jax.Array, du: jax.Array, project, x0: jax.Array, steps: int, l2: float) -> jax.Array:
    gram = ds.T @ ds + l2 * jnp.eye(ds.shape[1], dtype=ds.dtype)
    lin = ds.T @ du
    lip = jnp.maximum(jnp.linalg.eigvalsh(gram)[-1], 1e-12)

    def body(_, carry):
        x, y, t = carry
        x_new = project(y - (gram @ y - lin) / lip)
        t_new = (1.0 + jnp.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y_new = x_new + ((t - 1.0) / t_new) * (x_new - x)
        return x_new, y_new, t_new

    x, _, _ = jax.lax.fori_loop(0, steps, body, (x0, x0, jnp.asarray(1.0, ds.dtype)))
    return x


@functools.partial(jax.jit, static_argnames=("steps",))
def _fit_simplex(ds, du, l2, steps):
    c = ds.shape[1]
    return _fista(ds, du, project_simplex, jnp.full((c,), 1.0 / c, ds.dtype), steps, l2)


@functools.partial(jax.jit, static_argnames=("steps",))
def _fit_nonneg(ds, du, l2, steps):
    c = ds.shape[1]
    return _fista(ds, du, lambda x: jnp.maximum(x, 0.0), jnp.zeros((c,), ds.dtype), steps, l2)


def fit_requirement(
    delta_s: np.ndarray | Sequence[InterventionRecord],
    delta_u: np.ndarray | None = None,
    *,
    free_scale: bool = True,
    intercept: bool = False,
    l2: float = 0.0,
    steps: int = 3000,
) -> np.ndarray:
    """r on the simplex minimising Σ (ΔU − b − a·rᵀΔs)² (a = 1 unless `free_scale`; b = 0 unless
    `intercept`).

    `delta_s` is [N, C] (or a list of records, then `delta_u` is read from them).  With
    `intercept` the fit absorbs a change every intervention shares whatever its allocation (a
    small student distilled on any capability data drifts away from the task's output format);
    the free intercept is solved in closed form by centring ΔU and Δs.
    Returns uniform r when the non-negative fit is identically zero (no positive signal).
    """
    if delta_u is None:
        ds, du = _stack(delta_s)  # type: ignore[arg-type]
    else:
        ds, du = np.asarray(delta_s, np.float64), np.asarray(delta_u, np.float64).reshape(-1)
    if ds.ndim != 2 or ds.shape[0] != du.shape[0] or ds.shape[0] == 0:
        raise ReadJaxError(f"delta_s must be [N, C] and delta_u [N], got {ds.shape} and {du.shape}")
    c = ds.shape[1]
    if intercept:
        ds, du = ds - ds.mean(axis=0), du - du.mean()
    ds32, du32 = jnp.asarray(ds, jnp.float32), jnp.asarray(du, jnp.float32)
    if free_scale:
        g = np.asarray(_fit_nonneg(ds32, du32, jnp.float32(l2), steps=steps), np.float64)
        s = g.sum()
        return g / s if s > 1e-12 else np.full(c, 1.0 / c)
    r = np.asarray(_fit_simplex(ds32, du32, jnp.float32(l2), steps=steps), np.float64)
    r = np.clip(r, 0.0, None)
    return r / r.sum()


# --------------------------------------------------------------------------- (b) learned identifier
class CardEncoder:
    """Hashed character n-gram features of a card text: log(1 + count), L2-normalised.

    Hashing uses blake2b, so features are identical across processes and machines.
    """

    def __init__(self, dim: int = 1024, ngrams: Sequence[int] = (1, 2, 3, 4), lowercase: bool = True):
        if dim < 8 or not ngrams or min(ngrams) < 1:
            raise ReadJaxError("CardEncoder needs dim >= 8 and positive n-gram sizes")
        self.dim, self.ngrams, self.lowercase = int(dim), tuple(int(n) for n in ngrams), lowercase

    def __call__(self, text: str) -> np.ndarray:
        text = text.lower() if self.lowercase else text
        v = np.zeros(self.dim, dtype=np.float32)
        padded = f" {text} "
        for n in self.ngrams:
            for i in range(len(padded) - n + 1):
                h = hashlib.blake2b(f"{n}:{padded[i:i + n]}".encode(), digest_size=8).digest()
                v[int.from_bytes(h, "little") % self.dim] += 1.0
        v = np.log1p(v)
        norm = np.linalg.norm(v)
        return v / norm if norm > 0 else v

    def batch(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self(t) for t in texts])


class RequirementMLP(nnx.Module):
    """features -> (g on the simplex, positive scale a)."""

    def __init__(self, in_dim: int, num_capabilities: int, hidden: int = 64, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(in_dim, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, num_capabilities + 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        z = self.out(jnp.tanh(self.hidden(x)))
        return jax.nn.softmax(z[..., :-1], axis=-1), jax.nn.softplus(z[..., -1])


@dataclass
class RequirementIdentifier:
    """Trained g_φ: `predict(card_text) -> r` on the simplex."""

    model: RequirementMLP
    encoder: CardEncoder
    free_scale: bool
    losses: np.ndarray

    def predict(self, card: str | TaskCard) -> np.ndarray:
        text = card.text() if isinstance(card, TaskCard) else card
        g, _ = self.model(jnp.asarray(self.encoder(text))[None])
        return np.asarray(g[0], np.float64)

    def scale(self, card: str | TaskCard) -> float:
        text = card.text() if isinstance(card, TaskCard) else card
        return float(self.model(jnp.asarray(self.encoder(text))[None])[1][0]) if self.free_scale else 1.0


def train_identifier(
    cards: Mapping[str, str | TaskCard],
    records: Sequence[InterventionRecord],
    *,
    hidden: int = 64,
    steps: int = 600,
    learning_rate: float = 3e-3,
    lambda_ent: float = 1e-3,
    free_scale: bool = True,
    encoder: CardEncoder | None = None,
    seed: int = 0,
) -> RequirementIdentifier:
    """Fit g_φ across tasks: min mean (ΔU − a(card)·g(card)ᵀΔs)² + λ_ent · mean H(g(card)).

    `cards` maps task name -> card (or card text); every record's task must be in it.
    Full-batch Adam, one jitted `lax.scan` over `steps`.
    """
    encoder = encoder or CardEncoder()
    names = list(cards)
    missing = sorted({r.task for r in records} - set(names))
    if missing:
        raise ReadJaxError(f"intervention records for tasks without a card: {missing}")
    texts = [c.text() if isinstance(c, TaskCard) else str(c) for c in cards.values()]
    feats = jnp.asarray(encoder.batch(texts))
    ds, du = _stack(records)
    task_idx = jnp.asarray([names.index(r.task) for r in records])
    ds, du = jnp.asarray(ds, jnp.float32), jnp.asarray(du, jnp.float32)
    # normalise the regression so the learning rate does not depend on the units of ΔU
    u_scale = jnp.maximum(jnp.sqrt(jnp.mean(du**2)), 1e-8)

    model = RequirementMLP(encoder.dim, ds.shape[1], hidden, rngs=nnx.Rngs(seed))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adam(learning_rate)

    def loss_fn(p):
        m = nnx.merge(graphdef, p)
        g, a = m(feats)
        a = a if free_scale else jnp.ones_like(a)
        pred = a[task_idx] * jnp.sum(g[task_idx] * ds, axis=-1)
        mse = jnp.mean(((du - pred) / u_scale) ** 2)
        ent = -jnp.mean(jnp.sum(g * jnp.log(jnp.clip(g, 1e-12)), axis=-1))
        return mse + lambda_ent * ent

    @jax.jit
    def run(p):
        def step(carry, _):
            p, s = carry
            loss, grads = jax.value_and_grad(loss_fn)(p)
            upd, s = tx.update(grads, s, p)
            return (optax.apply_updates(p, upd), s), loss

        (p, _), losses = jax.lax.scan(step, (p, tx.init(p)), None, length=steps)
        return p, losses

    params, losses = run(params)
    return RequirementIdentifier(nnx.merge(graphdef, params), encoder, free_scale, np.asarray(losses))


# --------------------------------------------------------------------------- (a) + dispatch
def identify_requirement(
    card: TaskCard,
    registry: CapabilityRegistry,
    *,
    identifier: RequirementIdentifier | None = None,
    records: Sequence[InterventionRecord] | None = None,
    free_scale: bool = True,
) -> tuple[np.ndarray, str]:
    """(r_τ, source): the card's stated r, else g_φ(card), else a fit on this task's records, else uniform."""
    r = card.requirement(registry)
    if r is not None:
        return r, "card"
    if identifier is not None:
        return identifier.predict(card), "identifier"
    own = [x for x in (records or []) if x.task == card.name]
    if own:
        return fit_requirement(own, free_scale=free_scale), "interventions"
    return np.full(len(registry), 1.0 / len(registry)), "uniform"


def top_k(r: np.ndarray, k: int = 3) -> tuple[int, ...]:
    """Indices of the k largest entries (ties broken by index): the task-essential set C_ess."""
    r = np.asarray(r)
    return tuple(int(i) for i in np.argsort(-r, kind="stable")[:k])


def requirement_metrics(r_est: np.ndarray, r_true: np.ndarray, k: int = 3) -> dict[str, float]:
    r_est, r_true = np.asarray(r_est, np.float64), np.asarray(r_true, np.float64)
    kk = min(k, int(np.count_nonzero(r_true)) or k)
    return {
        "l1": float(np.abs(r_est - r_true).sum()),
        "cosine": float(r_est @ r_true / max(np.linalg.norm(r_est) * np.linalg.norm(r_true), 1e-12)),
        "topk_overlap": len(set(top_k(r_est, kk)) & set(top_k(r_true, kk))) / kk,
    }


def requirement_report(
    names: Sequence[str],
    estimated: Mapping[str, np.ndarray],
    true: Mapping[str, np.ndarray],
    k: int = 3,
) -> str:
    """Plain-text table: per task, estimated r next to true r, with L1 / cosine / top-k overlap."""
    short = [n[:8] for n in names]
    lines = []
    for task in estimated:
        lines.append(f"task {task}")
        lines.append("  " + " ".join(f"{s:>8}" for s in ["", *short]))
        lines.append("  " + " ".join(f"{x:>8}" for x in ["est", *(f"{v:.3f}" for v in estimated[task])]))
        if task in true:
            lines.append("  " + " ".join(f"{x:>8}" for x in ["true", *(f"{v:.3f}" for v in true[task])]))
            m = requirement_metrics(estimated[task], true[task], k)
            lines.append(f"  L1 {m['l1']:.3f}  cosine {m['cosine']:.3f}  top-k overlap {m['topk_overlap']:.2f}")
    return "\n".join(lines)
