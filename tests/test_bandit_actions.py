"""Candidate sets, spillover, proxy reward and the schedules, against hand-worked examples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from read_jax.bandit import (
    build_candidate_actions,
    calibrate,
    candidate_actions_jax,
    decay_kappa,
    local_perturbations,
    pad_actions,
    paper_action_set,
    proxy_reward,
    spillover,
    spillover_jax,
)

CAPS = ["general", "reasoning", "math", "code"]


def test_artifact_set_hand_worked():
    # ranking by r desc, ties lower index first: reasoning(1), math(2) tie at 0.4 -> 1 before 2
    out = build_candidate_actions(CAPS, [0.1, 0.4, 0.4, 0.1], 2, (0.25, 0.5, 0.75), 2, 50, True)
    assert out == [
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.25, 0.75, 0.0],
        [0.0, 0.5, 0.5, 0.0],
        [0.0, 0.75, 0.25, 0.0],
    ]


def test_artifact_set_top3_counts_and_order():
    r = [0.05, 0.2, 0.5, 0.25]  # pool: math(2), code(3), reasoning(1)
    out = build_candidate_actions(CAPS, r, 2, (0.25, 0.5, 0.75), 3, 50, True)
    assert len(out) == 3 + 3 * 3
    assert out[:3] == [[0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0]]
    assert out[3] == [0.0, 0.0, 0.25, 0.75]  # pair (math, code), w on math
    assert out[6] == [0.0, 0.75, 0.25, 0.0]  # pair (math, reasoning): 0.25 on math, 0.75 on reasoning
    assert out[-1] == [0.0, 0.25, 0.0, 0.75]  # pair (code, reasoning), w = 0.75 on code
    for w in out:
        assert abs(sum(w) - 1.0) < 1e-12 and min(w) >= 0


def test_artifact_set_edge_cases():
    r = [0.1, 0.4, 0.3, 0.2]
    uniform = [[0.25] * 4]
    # no one-hots and no pairs -> nothing -> uniform
    assert build_candidate_actions(CAPS, r, 1, (0.5,), 3, 50, False) == uniform
    # max_candidates cuts; 0 leaves nothing -> uniform
    assert build_candidate_actions(CAPS, r, 2, (0.5,), 3, 2, True) == [[0, 1, 0, 0], [0, 0, 1, 0]]
    assert build_candidate_actions(CAPS, r, 2, (0.5,), 3, 0, True) == uniform
    # top_k <= 0 -> a pool of one: its one-hot only (no pairs possible)
    assert build_candidate_actions(CAPS, r, 2, (0.5,), 0, 50, True) == [[0, 1, 0, 0]]
    # grid weights outside (0, 1) are skipped; duplicates after 6-decimal rounding dropped
    out = build_candidate_actions(CAPS, r, 2, (0.0, 0.5, 0.5000000001, 1.0), 2, 50, False)
    assert out == [[0.0, 0.5, 0.5, 0.0]]
    # top_k larger than |C| uses every capability
    assert len(build_candidate_actions(CAPS, r, 2, (0.5,), 10, 50, True)) == 4 + 6


_jax_builder = jax.jit(candidate_actions_jax, static_argnums=(1, 2, 3, 4, 5))


@pytest.mark.parametrize("seed", range(4))
def test_jax_builder_matches_python(seed):
    rng = np.random.default_rng(seed)
    r = rng.dirichlet(np.ones(6))
    if seed == 3:
        r = np.array([0.2, 0.3, 0.3, 0.1, 0.05, 0.05])  # ties
    for top_k, one_hot, max_c in ((3, True, 50), (2, False, 50), (4, True, 7)):
        want = build_candidate_actions([str(i) for i in range(6)], r, 2, (0.25, 0.5, 0.75), top_k, max_c, one_hot)
        got = _jax_builder(jnp.asarray(r, jnp.float32), 2, (0.25, 0.5, 0.75), top_k, max_c, one_hot)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)


def test_spillover_hand_worked():
    r = [0.1, 0.4, 0.4, 0.1]
    ds = [-0.5, -0.2, 0.3, -0.1]
    # top-2 pool = (1, 2): 0.4 * 0.2 + 0.4 * 0 = 0.08
    assert spillover(r, ds, 2) == pytest.approx(0.08)
    # top-3 pool = (1, 2, 0): + 0.1 * 0.5
    assert spillover(r, ds, 3) == pytest.approx(0.13)
    # top_k 0 -> pool of one (capability 1)
    assert spillover(r, ds, 0) == pytest.approx(0.08)
    assert spillover(r, [0.1, 0.1, 0.1, 0.1], 4) == 0.0
    assert float(spillover_jax(jnp.asarray(r), jnp.asarray(ds), 3)) == pytest.approx(0.13)


def test_proxy_reward_hand_worked():
    r = jnp.asarray([0.1, 0.4, 0.4, 0.1])
    ds = jnp.asarray([-0.5, -0.2, 0.3, -0.1])
    # r.ds = -0.05 - 0.08 + 0.12 - 0.01 = -0.02; spill(top 3) = 0.13; cost 1000 tokens * 1e-5
    want = -0.02 - 0.5 * 0.13 - 0.01
    assert float(proxy_reward(r, ds, 1000.0)) == pytest.approx(want, abs=1e-6)
    assert float(proxy_reward(r, ds, 0.0, beta=0.0)) == pytest.approx(-0.02, abs=1e-6)


def test_local_perturbations_and_paper_set():
    prev = [0.5, 0.5, 0.0, 0.0]
    out = local_perturbations(prev, 0.1, pool=[0, 1, 2])
    assert out[0] == prev
    assert [0.6, 0.4, 0.0, 0.0] in out and [0.4, 0.6, 0.0, 0.0] in out
    assert [0.4, 0.5, 0.1, 0.0] in out and [0.5, 0.4, 0.1, 0.0] in out
    assert all(w[3] == 0.0 for w in out)  # outside the pool nothing moves
    assert len(out) == 5  # moves out of capability 2 (empty) change nothing and are dropped
    both = paper_action_set(CAPS, [0.4, 0.4, 0.1, 0.1], prev, 0.1, (0.5,), 3, 50, True)
    assert both[: len(out)] == out[: len(both)]
    assert [1.0, 0.0, 0.0, 0.0] in both and [0.5, 0.5, 0.0, 0.0] == both[0]
    assert len(both) == len({tuple(np.round(w, 6)) for w in both})  # deduplicated


def test_pad_actions():
    acts, mask = pad_actions([[1.0, 0.0], [0.5, 0.5]], 4)
    assert acts.shape == (4, 2) and mask.tolist() == [True, True, False, False]
    np.testing.assert_allclose(acts[:2], [[1.0, 0.0], [0.5, 0.5]])
    with pytest.raises(ValueError):
        pad_actions([[1.0, 0.0]] * 3, 2)


def test_decay_kappa_on_stall():
    kappa, best = decay_kappa(1.0, -jnp.inf, 0.5)
    assert float(kappa) == 1.0 and float(best) == 0.5
    kappa, best = decay_kappa(kappa, best, 0.6)
    assert float(kappa) == 1.0 and float(best) == pytest.approx(0.6)
    kappa, best = decay_kappa(kappa, best, 0.55)  # stalled
    assert float(kappa) == pytest.approx(0.7) and float(best) == pytest.approx(0.6)
    kappa, _ = decay_kappa(kappa, best, 0.6)  # equal is not an improvement
    assert float(kappa) == pytest.approx(0.49)


def test_calibration_least_squares():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.uniform(size=10))
    y = 0.3 * x + 0.1 + 0.01 * rng.normal(size=10)
    cal = calibrate(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    assert cal.slope == pytest.approx(slope) and cal.intercept == pytest.approx(intercept)
    assert cal.reward_scale == pytest.approx(slope) and cal.n_points == 10
    neg = calibrate(x, -y)
    assert neg.slope < 0 and neg.reward_scale == 1.0
    assert calibrate([1.0], [0.5]).reward_scale == 1.0
    assert calibrate([], []).n_points == 0
    with pytest.raises(ValueError):
        calibrate([1.0, 2.0], [1.0])


@pytest.mark.parametrize("include_one_hot", [False, True])
def test_paper_set_walk_contains_prev_and_its_local_moves(include_one_hot):
    """Along a walk (each step plays a random member of the last set), every paper set holds the
    previous allocation first, all its local moves within the top-k pool and the whole sparse set,
    and never more rows than the fixed size the loop pads to."""
    caps = [f"c{i}" for i in range(8)]
    rng = np.random.default_rng(0)
    r = rng.dirichlet(np.ones(8))
    pool = sorted(range(8), key=lambda i: (-r[i], i))[:3]
    sparse = build_candidate_actions(caps, r.tolist(), 2, (0.25, 0.5, 0.75), 3, 10**9, include_one_hot)
    size = min(50, 1 + 3 * 2 + len(sparse))
    cands = paper_action_set(caps, r.tolist(), None, 0.1, (0.25, 0.5, 0.75), 3, 50, include_one_hot)
    assert cands == build_candidate_actions(caps, r.tolist(), 2, (0.25, 0.5, 0.75), 3, 50, include_one_hot)
    for _ in range(30):
        prev = np.asarray(cands[rng.integers(len(cands))])
        cands = paper_action_set(caps, r.tolist(), prev.tolist(), 0.1, (0.25, 0.5, 0.75), 3, 50, include_one_hot)
        acts, mask = pad_actions(cands, size)
        assert acts.shape == (size, 8) and int(mask.sum()) == len(cands)
        got = np.asarray(cands)
        np.testing.assert_allclose(got[0], prev / prev.sum(), atol=1e-9)
        moves = []
        for i in pool:
            for j in pool:
                if i != j and prev[j] > 0:
                    w = prev.copy()
                    w[i] += min(0.1, prev[j])
                    w[j] -= min(0.1, prev[j])
                    moves.append(w)
        for w in moves + [np.asarray(s) for s in sparse]:
            assert np.any(np.all(np.abs(got - w) <= 1e-6, axis=1)), w
        assert np.allclose(got.sum(1), 1.0) and np.all(got >= 0)
        assert np.all(got[:, [c for c in range(8) if c not in pool]] == 0.0)  # mass stays in the pool
        assert len(cands) == len({tuple(np.round(w, 6)) for w in cands})
