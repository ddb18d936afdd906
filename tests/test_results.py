"""The results machinery: statistics against scipy, the equivalent-budget rule, report sections from
suite files, and a tiny suite run end to end (cached by config and code, never recomputed)."""

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from read_jax.experiment import ExperimentConfig
from read_jax.loop import GenerationConfig, LoopConfig, TrainConfig
from read_jax.results import report, runner, suites
from read_jax.results.stats import holm, mean_ci, paired_p
from tiny_world import save_tiny_pair


@given(st.lists(st.floats(-1, 1), min_size=2, max_size=12))
@settings(max_examples=40, deadline=None)
def test_mean_ci_is_the_t_interval(xs):
    m, h = mean_ci(xs)
    lo, hi = stats.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=stats.sem(xs)) if np.std(xs) > 0 else (m, m)
    assert m == pytest.approx(np.mean(xs)) and m - h == pytest.approx(lo, abs=1e-9) and m + h == pytest.approx(hi, abs=1e-9)


def test_holm_and_paired_tests():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, float("nan"), 0.01]) == pytest.approx([0.5, np.nan, 0.02], nan_ok=True)
    a, b = [0.1, 0.3, 0.2, 0.5], [0.0, 0.25, 0.22, 0.4]
    assert paired_p(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_p(a, a) == 1.0


@given(st.lists(st.floats(0, 1), min_size=2, max_size=6), st.floats(0, 1))
@settings(max_examples=60, deadline=None)
def test_equivalent_budget_reaches_the_target_on_the_interpolated_curve(utilities, target):
    budgets = [1000 * 2**k for k in range(len(utilities))]
    need = report.equivalent_budget(budgets, utilities, target)
    if np.isinf(need):
        assert max(utilities) < target
    else:
        assert budgets[0] <= need <= budgets[-1]
        assert np.interp(need, budgets, utilities) >= target - 1e-9 or need == budgets[0]


def _cell(labels, names, utilities, caps=("a", "b")):
    return {"labels": labels, "capabilities": list(caps), "initial": {"utility": 0.1}, "identifier": None,
            "requirement": {"metrics": None},
            "policies": {n: {"utility": u, "tokens_used": 100, "overhead_share": 0.05, "search": None,
                             "profile": {c: u + i for i, c in enumerate(caps)},
                             "initial_profile": {c: 0.0 for c in caps}} for n, u in zip(names, utilities)}}


def test_report_sections_from_suite_files(tmp_path):
    head = {"small": True, "commit": "abc", "code_version": "123"}
    main = {**head, "title": "Main", "command": "read-jax results run main --small",
            "cells": [_cell({"task": "t", "seed": s}, ["read", "uniform"], [0.3 + s / 10, 0.2 + s / 10])
                      for s in range(3)]}
    for c in main["cells"]:  # g_φ's error: the mean over held-out auxiliary tasks, each task, and on the target
        c.update(identifier={"l1": 0.5, "topk_overlap": 0.5},
                 identifier_per_task={"x": {"l1": 0.4, "topk_overlap": 0.67}, "y": {"l1": 0.6, "topk_overlap": 0.33}},
                 requirement={"metrics": {"l1": 0.3}})
    budget = {**head, "title": "Budget", "command": "read-jax results run budget --small",
              "cells": [_cell({"task": "t", "seed": s, "budget": b}, ["read", "uniform"], [b / 1000, b / 2000])
                        for s in range(2) for b in (100, 200, 400)]}
    (tmp_path / "main-small.json").write_text(json.dumps(main))
    (tmp_path / "budget-small.json").write_text(json.dumps(budget))
    text = report.write_results(tmp_path, tmp_path / "RESULTS.md").read_text()
    assert "`read-jax results run main --small` · commit `abc`" in text
    m, h = mean_ci([0.3, 0.4, 0.5])
    assert f"| read | {m:.3f} ± {h:.3f} | 100 |" in text
    assert "L1 0.50, top-k overlap 0.50; on t itself: L1 0.30" in text
    assert "| x | 0.40 | 0.67 |" in text and "| y | 0.60 | 0.33 |" in text
    # uniform reaches read's utility at 200 tokens only with 400 (2x) and never read's 0.4 at 400
    assert "| 200 | 2.00x |" in text and "| 400 | > 1.0x |" in text
    assert (tmp_path / "budget_sweep.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    save_tiny_pair(root)
    loop = LoopConfig(task="dev_assistant", budget_tokens=800, intervals=2, probes_per_capability=3, dev_every=0.5,
                      generation=GenerationConfig(max_new_tokens=8, prompts_per_call=16, keep_unfinished=True),
                      train=TrainConfig(rows=8))
    config = ExperimentConfig(loop=loop, policies=("read_ucb", "uniform"), requirement="uniform",
                              teacher=str(root / "teacher"), student=str(root / "student"), eval_split="dev")

    def build(small, root_dir):
        return [suites.Cell("main", {"task": "dev_assistant", "seed": s},
                            dataclasses.replace(config, loop=dataclasses.replace(loop, seed=s))) for s in (0, 1)]
    return root, build


def test_a_suite_runs_once_and_is_cached_by_config_and_code(tiny_suite, monkeypatch):
    root, build = tiny_suite
    monkeypatch.setitem(suites.SUITES, "main", suites.Suite("main", "Main table", build))
    path = runner.run_suite("main", small=True, root=root / "out", progress=False)
    data = json.loads(path.read_text())
    assert len(data["cells"]) == 2 and {c["labels"]["seed"] for c in data["cells"]} == {0, 1}
    reports = sorted((root / "out" / "cells").glob("*/report.json"))
    assert len(reports) == 2
    stamps = [p.stat().st_mtime_ns for p in reports]
    runner.run_suite("main", small=True, root=root / "out", progress=False)  # cached: nothing re-runs
    assert [p.stat().st_mtime_ns for p in reports] == stamps
    # another code version gives other keys (stale results are never reused)
    cell = build(True, "")[0]
    assert runner.cell_key(cell, "v1") != runner.cell_key(cell, "v2")
    text = report.write_results(root / "out", root / "RESULTS.md").read_text()
    assert "### dev_assistant" in text and "| read |" in text and "| uniform |" in text  # read_ucb reports as read


def test_full_suites_have_the_sizes_the_issue_asks_for(tmp_path):
    """#13: main ≥ 3 tasks (both workloads, one composed) x ≥ 5 seeds x the paper's rows; transfer ≥ 3
    seeds x every one-hot; ≥ 4 budgets; the ablations; every cell on the paper's requirement path."""
    from read_jax.worlds import World

    world = World(0)
    main = suites.SUITES["main"].build(False, str(tmp_path))
    tasks = {c.labels["task"] for c in main}
    assert len(tasks) >= 3 and len(tasks & set(world.composite_task_names + world.chained_task_names)) >= 1
    assert {"dev_assistant", "quiz_desk"} <= tasks
    assert all(len({c.labels["seed"] for c in main if c.labels["task"] == t}) >= 5 for t in tasks)
    rows = set(main[0].config.policies)
    assert {"read_ucb", "read_paper", "read_thompson", "uniform", "task_static", "greedy", "greedy_ensemble", "grid",
            "one_hot_best", "odm", "doremi"} <= rows
    assert {f"one_hot.{s}_{o}" for s in ("cot", "logit") for o in ("sft", "kd")} | {"one_hot", "one_hot.resp_kd"} <= rows
    assert all(c.config.requirement == "identifier" for c in main)
    transfer = suites.SUITES["transfer"].build(False, str(tmp_path))
    assert len(transfer) >= 3 and len(transfer[0].config.policies) == 8
    assert len({c.labels["budget"] for c in suites.SUITES["budget"].build(False, str(tmp_path))}) >= 4
    variants = {c.labels["variant"] for c in suites.SUITES["ablations"].build(False, str(tmp_path))}
    assert {"no_spillover_penalty", "no_kappa_decay", "no_calibration", "context_without_rho", "top_k_2",
            "top_k_4"} <= variants


def test_overhead_table_splits_the_intervals_wall_time_into_phases():
    """Each row's phase shares cover the whole wall time, and its overhead is the sum of ReAD's own
    phases (the same `overhead_share` the experiment writes)."""
    from read_jax.experiment.report import OVERHEAD_PHASES, overhead_share

    rng = np.random.default_rng(0)
    recorded = ("generate", "train", "dev_eval", *OVERHEAD_PHASES)
    cells = [_cell({"task": "t", "seed": s}, ["read"], [0.3]) for s in range(3)]
    for c in cells:
        seconds = dict(zip(recorded, rng.uniform(0.1, 10.0, len(recorded)).tolist()))
        c["policies"]["read"].update(phase_seconds=seconds, overhead_share=overhead_share(seconds))
    table = report._overhead_table(cells)
    header = next(line for line in table if line.startswith("| policy |"))
    row = next(line for line in table if line.startswith("| read |"))
    columns = [x.strip() for x in header.strip("|").split("|")[2:]]
    means = [float(x.split("±")[0]) for x in row.strip("|").split("|")[1:]]
    overhead, phases = means[0], dict(zip(columns, means[1:]))
    assert set(phases) == set(recorded)  # every recorded phase has a column
    assert abs(sum(phases.values()) - 100) < 0.1 * len(phases)  # rounded to 0.1 per column
    assert abs(overhead - sum(phases[k] for k in OVERHEAD_PHASES)) < 0.1 * len(OVERHEAD_PHASES)
