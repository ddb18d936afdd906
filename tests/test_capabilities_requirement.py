"""Requirement identification: simplex fits, interventions, learned identifier g_φ(card)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from read_jax.capabilities import CapabilityRegistry, TaskCard
from read_jax.capabilities import requirement as R
from read_jax.errors import ReadJaxError


def _records(task, r, n, rng, noise=0.01, scale=1.0):
    ds = rng.normal(0.0, 1.0, size=(n, len(r)))
    du = scale * ds @ r + noise * rng.normal(size=n)
    return [R.InterventionRecord(task, np.full(len(r), 1 / len(r)), d, u) for d, u in zip(ds, du)]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([3, 8]).flatmap(lambda n: st.lists(st.floats(-5, 5), min_size=n, max_size=n)))
def test_project_simplex(v):
    v = np.asarray(v, np.float32)
    p = np.asarray(R.project_simplex(v))
    assert p.min() >= 0 and abs(p.sum() - 1) < 1e-5
    # it is the closest simplex point: no better point among random simplex samples
    cands = np.random.default_rng(0).dirichlet(np.ones(len(v)), size=200)
    assert np.sum((p - v) ** 2) <= np.min(np.sum((cands - v) ** 2, axis=1)) + 1e-5


def test_intervention_allocations():
    a = R.sample_intervention_allocations(500, 8, seed=0)
    assert a.shape == (500, 8)
    assert np.all((a > 0).sum(axis=1) == 2) and np.allclose(a.sum(axis=1), 1.0)
    assert np.all(np.bincount(np.flatnonzero(a > 0) % 8, minlength=8) > 60)  # every capability used
    assert np.array_equal(a, R.sample_intervention_allocations(500, 8, seed=0))
    with pytest.raises(ReadJaxError):
        R.sample_intervention_allocations(3, 8, support=9)


@pytest.mark.parametrize("free_scale,scale", [(True, 0.2), (True, 1.0), (False, 1.0)])
def test_fit_recovers_known_r(free_scale, scale):
    rng = np.random.default_rng(0)
    r = np.array([0.0, 0.5, 0.0, 0.3, 0.0, 0.0, 0.2, 0.0])
    recs = _records("t", r, 60, rng, noise=0.01 * scale, scale=scale)
    est = R.fit_requirement(recs, free_scale=free_scale)
    assert est.min() >= 0 and abs(est.sum() - 1) < 1e-6
    assert np.abs(est - r).sum() < 0.05, est
    assert R.requirement_metrics(est, r)["topk_overlap"] == 1.0


def test_fit_with_intercept_ignores_a_shared_drift():
    """Every intervention also moves U by the same amount (e.g. format drift): the plain fit is
    pulled off r, the intercept fit is not."""
    rng = np.random.default_rng(3)
    r = np.array([0.0, 0.0, 0.0, 0.0, 0.6, 0.4, 0.0, 0.0])
    ds = rng.normal(0.0, 0.05, size=(12, 8)) - 0.05
    du = ds @ r - 0.03 + rng.normal(0.0, 0.002, size=12)
    with_b = R.fit_requirement(ds, du, intercept=True)
    assert np.abs(with_b - r).sum() < 0.15, with_b
    assert np.abs(R.fit_requirement(ds, du) - r).sum() > np.abs(with_b - r).sum()


def test_fit_degenerate_and_validation():
    rng = np.random.default_rng(1)
    ds = rng.normal(size=(20, 4))
    assert np.allclose(R.fit_requirement(ds, np.zeros(20)), 0.25)  # no signal -> uniform
    with pytest.raises(ReadJaxError):
        R.fit_requirement(ds, np.zeros(3))
    with pytest.raises(ReadJaxError):
        R.fit_requirement([])


def test_learned_identifier_fits_across_tasks():
    rng = np.random.default_rng(0)
    true = {
        "translate_sums": np.array([0, 0, 0, 0.5, 0, 0, 0, 0.5]),
        "tool_facts": np.array([0.6, 0, 0, 0, 0, 0.4, 0, 0]),
        "lookup_code": np.array([0, 0, 0, 0, 0.5, 0, 0.5, 0]),
        "steer_reason": np.array([0, 0.7, 0.3, 0, 0, 0, 0, 0]),
    }
    cards = {n: f"task {n}: a synthetic task about {n.replace('_', ' ')}; exemplar {i}" for i, n in enumerate(true)}
    recs = [x for n, r in true.items() for x in _records(n, r, 40, rng, noise=0.01)]
    ident = R.train_identifier(cards, recs, steps=300, learning_rate=2e-2, seed=0)
    assert ident.losses[-1] < 0.01 * ident.losses[0]
    for n, r in true.items():
        est = ident.predict(cards[n])
        assert abs(est.sum() - 1) < 1e-5
        assert np.abs(est - r).sum() < 0.15, (n, est.round(2))
        assert R.requirement_metrics(est, r, k=2)["topk_overlap"] == 1.0
    report = R.requirement_report([f"c{i}" for i in range(8)], {n: ident.predict(cards[n]) for n in true}, true)
    assert "L1" in report and "translate_sums" in report
    with pytest.raises(ReadJaxError):
        R.train_identifier({"a": "x"}, recs, steps=1)


def test_card_encoder_deterministic():
    enc = R.CardEncoder(dim=256)
    a, b = enc("Translate then add"), R.CardEncoder(dim=256)("Translate then add")
    assert np.array_equal(a, b) and abs(np.linalg.norm(a) - 1) < 1e-5
    assert not np.array_equal(a, enc("Look up a key"))


def test_identify_requirement_precedence():
    reg = CapabilityRegistry()
    base = dict(name="t", description="d", input_format="i", output_format="o", exemplars=(("p", "a"),),
                dev_size=1, test_size=1, dev_seed=1, test_seed=2)
    stated = TaskCard(**base, stated_requirement={"math": 1.0})
    r, src = R.identify_requirement(stated, reg)
    assert src == "card" and r[reg.index("math")] == 1.0
    silent = TaskCard(**base)
    assert R.identify_requirement(silent, reg)[1] == "uniform"
    rng = np.random.default_rng(0)
    true = reg.vector({"code": 0.5, "tool_use": 0.5})
    r, src = R.identify_requirement(silent, reg, records=_records("t", true, 40, rng))
    assert src == "interventions" and np.abs(r - true).sum() < 0.05


def test_world_report_helper():
    from read_jax.worlds import World

    w = World(seed=0)
    est = {t.name: np.full(8, 1 / 8) for t in w.tasks}
    text = R.requirement_report(w.capabilities, est, w.true_requirements())
    assert all(t in text for t in w.task_names) and "true" in text
