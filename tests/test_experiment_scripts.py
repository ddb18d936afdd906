"""The analysis scripts under experiments/ that read committed suite files: what they compute and
what they refuse."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from read_jax.results.suites import main_table

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
CAPS = ["a", "b", "c"]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _budget_cell(budget: int, seed: int, target: int, gain: float, loss: list[float]) -> dict:
    initial = {c: -1.0 for c in CAPS}
    others = iter(loss)
    profile = {c: -1.0 + (gain if i == target else next(others)) for i, c in enumerate(CAPS)}
    allocation = [1.0 if i == target else 0.0 for i in range(len(CAPS))]
    return {"labels": {"budget": budget, "seed": seed}, "capabilities": CAPS, "initial": {"profile": initial},
            "policies": {"one_hot_best": {"profile": profile, "search": {"allocation": allocation}}}}


def test_transfer_vs_budget_reads_the_chosen_one_hot_and_the_others_mean():
    tvb = _load("transfer_vs_budget")
    data = {"cells": [_budget_cell(100, 0, 2, 0.3, [-0.1, -0.3]), _budget_cell(200, 0, 2, 0.5, [-0.4, -0.6])]}
    found = tvb.rows(data)
    assert [r["capability"] for r in found] == ["c", "c"]
    assert found[0]["on_target"] == pytest.approx(0.3) and found[0]["off_target"] == pytest.approx(-0.2)
    assert found[1]["off_target"] == pytest.approx(-0.5)
    # the marginal column: (0.5 - 0.3) over 100 tokens, per 100k tokens
    assert f"{0.2 / (100 / 100_000):+.3f}" in tvb.table(found)


R_HAT = [0.5, 0.5]


def _report(policies: dict[str, float], r_hat: list[float] = R_HAT) -> dict:
    return {"policies": {p: {"utility": u} for p, u in policies.items()}, "requirement": {"estimated": r_hat}}


@pytest.mark.parametrize("variant", ["true_r", "paper_actions"])
def test_main_variants_change_one_thing_and_check_the_pairing(tmp_path, variant):
    mv = _load("main_variants")
    cells = [c for c in main_table(False, str(tmp_path)) if c.labels["seed"] == 0]
    changed = [mv.VARIANTS[variant](c.config) for c in cells]
    for cell, config in zip(cells, changed):
        assert config.loop.seed == cell.config.loop.seed and config.loop.budget_tokens == cell.config.loop.budget_tokens
        assert "uniform" in config.policies
        if variant == "true_r":
            assert config.requirement == "true" and config.loop.bandit == cell.config.loop.bandit
        else:
            assert config.requirement == cell.config.requirement
            assert (config.loop.bandit.action_set, config.loop.bandit.include_one_hot) == ("paper", False)
    names = [mv._name(p) for p in changed[0].policies]
    main = {"code_version": "x", "cells": [{"labels": c.labels, "policies": {n: {"utility": 0.25} for n in names},
                                            "requirement": {"estimated": R_HAT}} for c in cells]}
    (tmp_path / "main.json").write_text(json.dumps(main))
    for cell in cells:  # finished variant cells of this code version: run() only reads them
        out = tmp_path / "main_variants" / variant / mv.code_version() / f"{cell.labels['task']}-seed0"
        out.mkdir(parents=True)
        (out / "report.json").write_text(json.dumps(_report({n: 0.5 for n in names} | {"uniform": 0.25})))
    summary = mv.run(variant, tmp_path, seeds=1)
    assert len(summary["rows"]) == len(cells)
    assert all(r["variant"][n] == 0.5 for r in summary["rows"] for n in names if n != "uniform")
    assert "uniform (pairing check" in mv.table(summary)
    (out / "report.json").write_text(json.dumps(_report({n: 0.5 for n in names})))  # uniform moved: not paired
    with pytest.raises(SystemExit, match="pairing check failed: uniform"):
        mv.run(variant, tmp_path, seeds=1)
    (out / "report.json").write_text(json.dumps(_report({n: 0.5 for n in names} | {"uniform": 0.25}, [0.6, 0.4])))
    if variant == "paper_actions":  # the same requirement stage must give the same r_hat
        with pytest.raises(SystemExit, match="estimated r differs"):
            mv.run(variant, tmp_path, seeds=1)
    else:  # true_r replaces the estimate: nothing to compare
        assert len(mv.run(variant, tmp_path, seeds=1)["rows"]) == len(cells)


def test_transfer_vs_budget_on_the_committed_sweep_when_present():
    path = EXPERIMENTS.parent / "results" / "budget.json"
    if not path.exists():
        pytest.skip("results/budget.json is not in this checkout")
    tvb = _load("transfer_vs_budget")
    found = tvb.rows(json.loads(path.read_text()))
    # a one-hot raises the capability it spends on: the search picked it on the profiling split
    assert np.mean([r["on_target"] for r in found]) > 0
