"""Candidate allocation sets A(tau) (method.md §5) and the spillover term of the reward.

Two families:

* the artifact's **sparse top-k set** (`build_candidate_actions`): one-hots and weighted pairs over
  the k capabilities the task needs most.  Small (<= 3 + 3 * 3 = 12 for k = 3) on purpose: ~20
  decisions per run cannot explore 50 arbitrary mixtures;
* the paper's **local perturbations** (`local_perturbations`): move a little mass between two
  capabilities of the previous allocation, so the bandit can refine a good mixture instead of
  jumping around.  `paper_action_set` is the union of both.

`build_candidate_actions` and `spillover` are plain Python/numpy with exact, documented semantics
(they run once per step, outside jit).  `candidate_actions_jax` and `spillover_jax` are jittable
twins with the same ordering, used by the simulator where r differs per vmapped seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

ARTIFACT_WEIGHT_GRID = (0.25, 0.5, 0.75)
ARTIFACT_TOP_K = 3
ARTIFACT_MAX_CANDIDATES = 50


def rank_capabilities(r: Sequence[float]) -> list[int]:
    """Indices sorted by r descending; ties keep the lower index first."""
    r = [float(v) for v in r]
    return sorted(range(len(r)), key=lambda i: (-r[i], i))


def _dedupe_cut(cands: list[np.ndarray], max_candidates: int, n_caps: int) -> list[list[float]]:
    seen: set[tuple[float, ...]] = set()
    out: list[list[float]] = []
    for w in cands:
        total = float(np.sum(w))
        if not total > 0.0:
            continue
        w = w / total
        key = tuple(np.round(w, 6).tolist())
        if key in seen:
            continue
        seen.add(key)
        out.append([float(v) for v in w])
    out = out[: max(int(max_candidates), 0)]
    if not out:
        out = [[1.0 / n_caps] * n_caps]
    return out


def build_candidate_actions(
    capabilities: Sequence[str],
    r: Sequence[float],
    max_support: int = 2,
    weight_grid: Sequence[float] = ARTIFACT_WEIGHT_GRID,
    top_k: int = ARTIFACT_TOP_K,
    max_candidates: int = ARTIFACT_MAX_CANDIDATES,
    include_one_hot: bool = True,
) -> list[list[float]]:
    """The artifact's candidate set: sparse allocations over the top-k capabilities by r.

    Rank capabilities by r descending (ties: lower index first); the pool is the first
    max(1, top_k).  Candidates, in order: the one-hots of the pool in pool order (only if
    ``include_one_hot``); then, only if ``max_support`` >= 2, for each pair (i < j in pool order)
    and each grid weight 0 < w < 1, weight w on pool[i] and 1 - w on pool[j].  Each is renormalised
    to sum 1, duplicates (after rounding to 6 decimals) dropped, the list cut at ``max_candidates``.
    If nothing is left, the uniform allocation.  Returns a list of allocations of length |C|.
    """
    n = len(capabilities)
    if n < 1:
        raise ValueError("need at least one capability")
    if len(r) != n:
        raise ValueError(f"r has {len(r)} entries for {n} capabilities")
    pool = rank_capabilities(r)[: max(1, int(top_k))]
    cands: list[np.ndarray] = []
    if include_one_hot:
        for c in pool:
            w = np.zeros(n)
            w[c] = 1.0
            cands.append(w)
    if max_support >= 2:
        for a in range(len(pool)):
            for b in range(a + 1, len(pool)):
                for g in weight_grid:
                    g = float(g)
                    if not 0.0 < g < 1.0:
                        continue
                    w = np.zeros(n)
                    w[pool[a]] = g
                    w[pool[b]] = 1.0 - g
                    cands.append(w)
    return _dedupe_cut(cands, max_candidates, n)


def spillover(r: Sequence[float], delta_s: Sequence[float], top_k: int = ARTIFACT_TOP_K) -> float:
    """sum over the top_k capabilities by r (same ranking) of r_c * max(0, -delta_s_c).

    The reward's penalty for *losing* ground on task-essential capabilities (negative transfer).
    """
    if len(r) != len(delta_s):
        raise ValueError(f"r has {len(r)} entries, delta_s {len(delta_s)}")
    pool = rank_capabilities(r)[: max(1, int(top_k))]
    return float(sum(float(r[c]) * max(0.0, -float(delta_s[c])) for c in pool))


def local_perturbations(
    prev: Sequence[float],
    step: float = 0.1,
    pool: Sequence[int] | None = None,
    max_candidates: int = ARTIFACT_MAX_CANDIDATES,
) -> list[list[float]]:
    """The paper's local moves: prev itself, then prev with ``step`` mass moved from j to i.

    For every ordered pair (i, j), i != j, in ``pool`` (default: every capability), move
    min(step, prev_j) from j to i; moves that change nothing are dropped.  Renormalised,
    deduplicated (6 decimals) and cut like `build_candidate_actions`.
    """
    prev = np.asarray(prev, dtype=np.float64)
    n = prev.shape[0]
    pool = list(range(n)) if pool is None else [int(c) for c in pool]
    cands = [prev.copy()]
    for i in pool:
        for j in pool:
            if i == j:
                continue
            move = min(step, prev[j])
            if move <= 0.0:
                continue
            w = prev.copy()
            w[i] += move
            w[j] -= move
            cands.append(w)
    return _dedupe_cut(cands, max_candidates, n)


def paper_action_set(
    capabilities: Sequence[str],
    r: Sequence[float],
    prev: Sequence[float] | None,
    step: float = 0.1,
    weight_grid: Sequence[float] = ARTIFACT_WEIGHT_GRID,
    top_k: int = ARTIFACT_TOP_K,
    max_candidates: int = ARTIFACT_MAX_CANDIDATES,
    include_one_hot: bool = True,
) -> list[list[float]]:
    """Paper A(tau): local perturbations of ``prev`` (over the top-k pool), then the sparse set."""
    n = len(capabilities)
    sparse = build_candidate_actions(
        capabilities, r, 2, weight_grid, top_k, 10**9, include_one_hot
    )
    local: list[list[float]] = []
    if prev is not None:
        pool = rank_capabilities(r)[: max(1, int(top_k))]
        local = local_perturbations(prev, step, pool, 10**9)
    return _dedupe_cut([np.asarray(w) for w in local + sparse], max_candidates, n)


def pad_actions(actions: Sequence[Sequence[float]], size: int) -> tuple[Array, Array]:
    """Stack a candidate list into a fixed-shape [size, C] array plus a validity mask.

    Fixed shapes avoid a recompile when the candidate count changes between steps.
    """
    a = np.asarray(actions, dtype=np.float32)
    if a.ndim != 2 or a.shape[0] > size:
        raise ValueError(f"need at most {size} allocations of equal length, got shape {a.shape}")
    out = np.zeros((size, a.shape[1]), np.float32)
    out[: a.shape[0]] = a
    out[a.shape[0] :] = 1.0 / a.shape[1]  # a harmless valid allocation in padded rows
    mask = np.arange(size) < a.shape[0]
    return jnp.asarray(out), jnp.asarray(mask)


def _static_layout(
    n_caps: int, max_support: int, weight_grid: Sequence[float], top_k: int, max_candidates: int, include_one_hot: bool
) -> tuple[list[tuple[int, int, float]], int]:
    """(pool position a, pool position b, weight on a) triples, the same order as the python builder."""
    pool_size = min(max(1, int(top_k)), n_caps)
    grid: list[float] = []
    seen: set[float] = set()
    for g in weight_grid:
        g = float(g)
        if 0.0 < g < 1.0 and round(g, 6) not in seen:
            seen.add(round(g, 6))
            grid.append(g)
    triples: list[tuple[int, int, float]] = []
    if include_one_hot:
        triples += [(a, a, 1.0) for a in range(pool_size)]
    if max_support >= 2:
        triples += [(a, b, g) for a in range(pool_size) for b in range(a + 1, pool_size) for g in grid]
    return triples[: max(int(max_candidates), 0)], pool_size


def candidate_actions_jax(
    r: Array,
    max_support: int = 2,
    weight_grid: Sequence[float] = ARTIFACT_WEIGHT_GRID,
    top_k: int = ARTIFACT_TOP_K,
    max_candidates: int = ARTIFACT_MAX_CANDIDATES,
    include_one_hot: bool = True,
) -> Array:
    """Jittable `build_candidate_actions` for a traced r: [K, C] with K fixed by the options.

    The structure (which pool positions, which weights) is static; only the pool indices depend on
    r.  Duplicates can only come from repeated grid weights, which are removed statically, so the
    output equals the python builder row for row (tested).
    """
    r = jnp.asarray(r)
    n = r.shape[-1]
    triples, pool_size = _static_layout(n, max_support, weight_grid, top_k, max_candidates, include_one_hot)
    if not triples:
        return jnp.full((1, n), 1.0 / n, r.dtype)
    pool = jnp.argsort(-r, stable=True)[:pool_size]
    a = np.array([t[0] for t in triples])
    b = np.array([t[1] for t in triples])
    g = jnp.asarray([t[2] for t in triples], r.dtype)
    eye = jnp.eye(n, dtype=r.dtype)
    return g[:, None] * eye[pool[a]] + (1.0 - g)[:, None] * eye[pool[b]]


def spillover_jax(r: Array, delta_s: Array, top_k: int = ARTIFACT_TOP_K) -> Array:
    """Jittable `spillover` (same ranking and ties)."""
    n = r.shape[-1]
    pool = jnp.argsort(-r, stable=True)[: min(max(1, int(top_k)), n)]
    return jnp.sum(r[pool] * jnp.maximum(0.0, -delta_s[pool]))
