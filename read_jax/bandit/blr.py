"""Bayesian linear regression with a Normal-Inverse-Gamma prior (the default ReAD reward model).

Model (Riquelme, Tucker & Snoek 2018, "Deep Bayesian Bandits Showdown", LinearFullPosterior):

    y = phi^T beta + eps,   eps ~ N(0, sigma^2)
    sigma^2 ~ InvGamma(a0, b0),   beta | sigma^2 ~ N(0, sigma^2 / lam * I)

Posterior after data (X, y), with Lambda = X^T X + lam I:

    mu = Lambda^{-1} X^T y,   a = a0 + n / 2,   b = b0 + (y^T y - mu^T Lambda mu) / 2
    beta | sigma^2 ~ N(mu, sigma^2 Lambda^{-1}),  sigma^2 ~ InvGamma(a, b)

Why it is stored this way:

* The state is the **exact sufficient statistics** (X^T X, X^T y, y^T y, n, plus sum(x), sum(y) so
  that targets can be re-centred later).  An update is an addition, so a batch update and a
  sequence of single updates give the same state, and nothing drifts: the posterior is recomputed
  from the statistics on demand with one Cholesky factorisation and triangular solves.  There is
  no explicit inverse and no Sherman-Morrison covariance recursion whose rounding errors would
  accumulate and eventually break positive definiteness.
* An optional forgetting factor ``forget`` in (0, 1] discounts old statistics once per observation
  (a non-stationary reward: the student changes while it is distilled).  The prior is never
  discounted, so the precision keeps its ``lam * I`` floor.
* Every field is an array leaf of a ``chex.dataclass``, so the state goes through ``jit``,
  ``lax.scan`` and ``vmap`` (e.g. one posterior per simulated seed).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from read_jax import backend

Array = jax.Array

# Riquelme et al. (2018) defaults for LinearFullPosteriorSampling.
DEFAULT_A0 = 6.0
DEFAULT_B0 = 6.0
DEFAULT_LAMBDA = 0.25


STATS = ("xtx", "xty", "yty", "sum_x", "sum_y", "n")


@chex.dataclass
class BLRPosterior:
    """Sufficient statistics of (possibly discounted) data plus the NIG prior hyper-parameters.

    Attributes:
      xtx: [d, d] sum of w_i x_i x_i^T (w_i = forgetting weight, 1 without forgetting).
      xty: [d] sum of w_i x_i y_i.
      yty: [] sum of w_i y_i^2.
      sum_x: [d] sum of w_i x_i (only needed to re-centre targets, see `standardize`).
      sum_y: [] sum of w_i y_i.
      n: [] effective number of observations, sum of w_i (a float because of forgetting).
      lo: the low-order parts of the six sums above (same keys and shapes).  Each statistic is
        an unevaluated float32 pair hi + lo (compensated, "double-float" summation), so 10^5
        updates do not accumulate the ~sqrt(n) eps |sum| rounding error of a plain f32 sum.
        That error matters: features with exact collinearity (the allocation sums to 1, r sums
        to 1) leave directions of Lambda held up only by the prior lam = 0.25, and plain f32
        accumulation pushed them negative in our 10^5-update test.  `stats(post)` gives hi + lo.
      a0, b0, lam: NIG prior (shape, scale of the noise variance; precision of beta / sigma^2).
      forget: [] forgetting factor in (0, 1]; 1 keeps every observation at full weight.
    """

    xtx: Array
    xty: Array
    yty: Array
    sum_x: Array
    sum_y: Array
    n: Array
    lo: dict
    a0: Array
    b0: Array
    lam: Array
    forget: Array

    @property
    def dim(self) -> int:
        return self.xty.shape[-1]


def stats(post: BLRPosterior) -> dict[str, Array]:
    """The six statistics as single arrays (hi + lo, rounded once)."""
    return {k: getattr(post, k) + post.lo[k] for k in STATS}


def _two_sum(a: Array, b: Array) -> tuple[Array, Array]:
    """Knuth's error-free transformation: a + b = s + e exactly (IEEE round-to-nearest)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _accumulate(hi: Array, lo: Array, decay: Array, term: Array) -> tuple[Array, Array]:
    """(hi, lo) <- decay * (hi, lo) + term in double-float arithmetic."""
    s, e = _two_sum(decay * hi, term)
    return _two_sum(s, e + decay * lo)


@chex.dataclass
class NIGParams:
    """The posterior in usable form: mean, Cholesky factor of the precision, InvGamma(a, b)."""

    mean: Array  # [d]
    chol: Array  # [d, d] lower L with L L^T = Lambda (posterior precision / sigma^2)
    a: Array  # []
    b: Array  # []

    @property
    def noise_var(self) -> Array:
        """E[sigma^2] = b / (a - 1); a > 1 always holds for a0 > 1."""
        return self.b / jnp.maximum(self.a - 1.0, 1e-6)


def init(
    dim: int,
    *,
    a0: float = DEFAULT_A0,
    b0: float = DEFAULT_B0,
    lam: float = DEFAULT_LAMBDA,
    forget: float = 1.0,
    dtype: jnp.dtype = jnp.float32,
) -> BLRPosterior:
    """Empty statistics (the prior) for a ``dim``-dimensional feature vector."""
    if dim < 1:
        raise ValueError(f"feature dimension must be >= 1, got {dim}")
    if not 0.0 < forget <= 1.0:
        raise ValueError(f"forgetting factor must be in (0, 1], got {forget}")
    if a0 <= 1.0 or b0 <= 0.0 or lam <= 0.0:
        raise ValueError(f"need a0 > 1, b0 > 0, lam > 0; got a0={a0}, b0={b0}, lam={lam}")
    shapes = {"xtx": (dim, dim), "xty": (dim,), "yty": (), "sum_x": (dim,), "sum_y": (), "n": ()}
    return BLRPosterior(
        **{k: jnp.zeros(v, dtype) for k, v in shapes.items()},
        lo={k: jnp.zeros(v, dtype) for k, v in shapes.items()},
        a0=jnp.asarray(a0, dtype),
        b0=jnp.asarray(b0, dtype),
        lam=jnp.asarray(lam, dtype),
        forget=jnp.asarray(forget, dtype),
    )


def _with_stats(post: BLRPosterior, values: dict[str, Array]) -> BLRPosterior:
    """A posterior holding ``values`` as its statistics (low-order parts reset to zero)."""
    return post.replace(**values, lo={k: jnp.zeros_like(v) for k, v in values.items()})


@jax.jit
def update(post: BLRPosterior, x: Array, y: Array, mask: Array | None = None) -> BLRPosterior:
    """Add a batch of observations ``x`` [m, d], ``y`` [m] (rows with ``mask`` False are skipped).

    With forgetting, row i gets weight forget^(number of valid rows after it) and the old
    statistics are multiplied by forget^(number of valid rows), which is exactly what m single
    updates in order would give.  ``mask`` lets fixed-shape (jitted, scanned) code pad batches.
    """
    x = jnp.asarray(x, post.xty.dtype)
    y = jnp.asarray(y, post.xty.dtype)
    valid = jnp.ones(y.shape, x.dtype) if mask is None else jnp.asarray(mask, x.dtype)
    after = jnp.cumsum(valid[::-1])[::-1] - valid  # valid rows strictly after row i
    w = valid * post.forget**after
    decay = post.forget ** jnp.sum(valid)
    xw = x * w[:, None]
    terms = {
        "xtx": xw.T @ x,
        "xty": xw.T @ y,
        "yty": jnp.sum(w * y * y),
        "sum_x": jnp.sum(xw, axis=0),
        "sum_y": jnp.sum(w * y),
        "n": jnp.sum(w),
    }
    hi, lo = {}, {}
    for k in STATS:
        hi[k], lo[k] = _accumulate(getattr(post, k), post.lo[k], decay, terms[k])
    return post.replace(**hi, lo=lo)


@jax.jit
def update_one(post: BLRPosterior, x: Array, y: Array | float) -> BLRPosterior:
    """Add one observation ``x`` [d], ``y`` []."""
    return update(post, jnp.asarray(x)[None, :], jnp.reshape(jnp.asarray(y), (1,)))


def _lower(chol: Array, rhs: Array) -> Array:
    return solve_triangular(chol, rhs, lower=True)


def _lower_t(chol: Array, rhs: Array) -> Array:
    return solve_triangular(chol, rhs, lower=True, trans=1)


_lower_sequential = jax.custom_batching.sequential_vmap(_lower)
_lower_t_sequential = jax.custom_batching.sequential_vmap(_lower_t)


def solve_lower(chol: Array, rhs: Array) -> Array:
    """L^{-1} rhs.  On CPU, under vmap this loops over the batch (LAPACK trsm per item): XLA's batched
    TriangularSolve on CPU is far slower, and the simulator vmaps over seeds (`read_jax.backend`)."""
    return (_lower_sequential if backend.sequential_solves() else _lower)(chol, rhs)


def solve_lower_t(chol: Array, rhs: Array) -> Array:
    """L^{-T} rhs (see `solve_lower` for why CPU loops under vmap)."""
    return (_lower_t_sequential if backend.sequential_solves() else _lower_t)(chol, rhs)


def cho_solve(chol: Array, rhs: Array) -> Array:
    """Lambda^{-1} rhs = L^{-T} L^{-1} rhs, two triangular solves (never an explicit inverse)."""
    return solve_lower_t(chol, solve_lower(chol, rhs))


@jax.jit
def precision(post: BLRPosterior) -> Array:
    """Lambda = X^T X + lam I (symmetrised: it is the quantity that must stay positive definite)."""
    xtx = post.xtx + post.lo["xtx"]
    return 0.5 * (xtx + xtx.T) + post.lam * jnp.eye(post.dim, dtype=xtx.dtype)


@jax.jit
def posterior(post: BLRPosterior) -> NIGParams:
    """Closed-form NIG posterior from the statistics: one Cholesky, two triangular solves."""
    st = stats(post)
    chol = jnp.linalg.cholesky(precision(post))
    mean = cho_solve(chol, st["xty"])
    # y^T y - mu^T Lambda mu = y^T y - mu^T X^T y >= 0 in exact arithmetic (a ridge residual).
    resid = jnp.maximum(st["yty"] - jnp.dot(mean, st["xty"]), 0.0)
    return NIGParams(mean=mean, chol=chol, a=post.a0 + 0.5 * st["n"], b=post.b0 + 0.5 * resid)


@jax.jit
def standardize(post: BLRPosterior) -> BLRPosterior:
    """Statistics of the targets centred and scaled by their own (weighted) mean and std.

    The NIG prior (a0 = b0 = 6: prior noise variance ~1.2; lam = 0.25) assumes rewards of unit
    scale, as in Riquelme et al.'s benchmark.  ReAD's proxy rewards are ~1e-2 and carry a constant
    cost offset, so the bandit decides on (y - mean) / std instead.  Because the statistics are
    exact sums this is pure algebra on them: X^T y' = (X^T y - m sum x) / c and
    y'^T y' = (y^T y - 2 m sum y + n m^2) / c^2.  UCB and Thompson rankings are unchanged by the
    affine map except through the prior, which is the point.  Callers should feed targets already
    shifted by a pivot (e.g. the first reward) so the sums do not cancel catastrophically in f32.
    """
    st = stats(post)
    n = st["n"]
    safe_n = jnp.maximum(n, 1e-12)
    m = jnp.where(n > 0, st["sum_y"] / safe_n, 0.0)
    var = jnp.maximum(st["yty"] / safe_n - m * m, 0.0)
    c = jnp.sqrt(var + 1e-12)
    return _with_stats(post, {
        **st,
        "xty": (st["xty"] - m * st["sum_x"]) / c,
        "yty": jnp.maximum(st["yty"] - 2.0 * m * st["sum_y"] + n * m * m, 0.0) / (c * c),
        "sum_y": (st["sum_y"] - n * m) / c,
    })


def _masked_argmax(scores: Array, mask: Array | None) -> Array:
    if mask is not None:
        scores = jnp.where(mask, scores, -jnp.inf)
    return jnp.argmax(scores)


@jax.jit
def predictive_std_unit(nig: NIGParams, phi: Array) -> Array:
    """sqrt(phi^T Lambda^{-1} phi) for each row of ``phi`` [K, d], via L^{-1} phi^T."""
    z = solve_lower(nig.chol, phi.T)  # [d, K]
    return jnp.sqrt(jnp.sum(z * z, axis=0))


@jax.jit
def ucb_scores(nig: NIGParams, phi: Array, kappa: Array | float) -> Array:
    """x^T mu + kappa * sqrt(E[sigma^2] x^T Lambda^{-1} x) for each candidate row of ``phi``."""
    return phi @ nig.mean + kappa * jnp.sqrt(nig.noise_var) * predictive_std_unit(nig, phi)


def gamma_large_shape(key: Array, a: Array, n: int | None = None, proposals: int = 16) -> Array:
    """Gamma(a, 1) draws (one, or ``n``) for shape a >= 1 (Marsaglia & Tsang 2000), no while loop.

    Why not ``jax.random.gamma``: its rejection loop (plus the a < 1 boost) takes seconds to
    compile on CPU, and the simulator compiles it once per policy.  Here a >= 1 always holds
    (a = a0 + n/2 with a0 > 1), where Marsaglia-Tsang accepts a proposal with probability > 0.95;
    drawing ``proposals`` candidates at once and keeping the first accepted one is the same
    sampler, except with probability < 0.05^16 ~ 1e-21 (then the last proposal is returned).
    """
    a = jnp.maximum(jnp.asarray(a), 1.0)
    m = 1 if n is None else n
    d = a - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    k_x, k_u = jax.random.split(key)
    x = jax.random.normal(k_x, (m * proposals,), a.dtype).reshape(m, proposals)
    u = jax.random.uniform(k_u, (m * proposals,), a.dtype, minval=1e-30).reshape(m, proposals)
    v = (1.0 + c * x) ** 3
    ok = (v > 0) & (jnp.log(u) < 0.5 * x * x + d - d * v + d * jnp.log(jnp.maximum(v, 1e-30)))
    ok = ok.at[:, -1].set(True)
    first = jnp.argmax(ok, axis=1)
    out = d * jnp.take_along_axis(v, first[:, None], axis=1)[:, 0]
    return out[0] if n is None else out


@jax.jit
def thompson_sample(nig: NIGParams, key: Array) -> Array:
    """One posterior draw: sigma^2 = b / Gamma(a), beta = mu + sigma L^{-T} eps.

    Cov(L^{-T} eps) = (L L^T)^{-1} = Lambda^{-1}, so beta ~ N(mu, sigma^2 Lambda^{-1}).
    """
    k_gamma, k_normal = jax.random.split(key)
    sigma2 = nig.b / gamma_large_shape(k_gamma, nig.a.astype(nig.mean.dtype))
    eps = jax.random.normal(k_normal, nig.mean.shape, nig.mean.dtype)
    z = solve_lower_t(nig.chol, eps)
    return nig.mean + jnp.sqrt(sigma2) * z


@functools.partial(jax.jit, static_argnums=2)
def thompson_samples(nig: NIGParams, key: Array, n: int) -> Array:
    """``n`` independent posterior draws [n, d] (one solve with n right-hand sides)."""
    k_gamma, k_normal = jax.random.split(key)
    sigma2 = nig.b / gamma_large_shape(k_gamma, nig.a.astype(nig.mean.dtype), n)
    d = nig.mean.shape[0]
    eps = jax.random.normal(k_normal, (d * n,), nig.mean.dtype).reshape(d, n)
    z = solve_lower_t(nig.chol, eps)  # [d, n]
    return nig.mean[None, :] + jnp.sqrt(sigma2)[:, None] * z.T


@jax.jit
def thompson_scores(nig: NIGParams, phi: Array, key: Array) -> Array:
    """Scores of every candidate under one shared posterior draw (a draw per decision)."""
    return phi @ thompson_sample(nig, key)


@jax.jit
def select_ucb(post: BLRPosterior, phi: Array, kappa: Array | float, mask: Array | None = None) -> Array:
    """Index of the UCB-maximising candidate (``mask`` False rows are never chosen)."""
    return _masked_argmax(ucb_scores(posterior(post), phi, kappa), mask)


@jax.jit
def select_thompson(post: BLRPosterior, phi: Array, key: Array, mask: Array | None = None) -> Array:
    """Index of the best candidate under one Thompson draw."""
    return _masked_argmax(thompson_scores(posterior(post), phi, key), mask)
