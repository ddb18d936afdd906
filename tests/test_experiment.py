"""A tiny end-to-end experiment through the demo's code path (Experiment.run), on random tiny models."""

import json

import numpy as np
import pytest

from read_jax.errors import ReadJaxError
from read_jax.experiment import Experiment, ExperimentConfig, format_table
from read_jax.loop import GenerationConfig, LoopConfig, TrainConfig
from tiny_world import tiny_components


def _components():
    return tiny_components("dev_assistant")  # the demo's task


TINY = ExperimentConfig(
    loop=LoopConfig(task="dev_assistant", budget_tokens=1500, intervals=2, probes_per_capability=3, dev_every=0.5,
                    generation=GenerationConfig(max_new_tokens=8, prompts_per_call=16),
                    train=TrainConfig(rows=8, warmup_steps=2)),
    policies=("read_ucb", "uniform", "one_hot"), requirement="interventions", interventions=2,
    intervention_tokens=400, eval_split="dev")


def test_tiny_experiment_writes_the_report(tmp_path):
    report = Experiment(TINY, tmp_path, components=_components(), progress=False).run()
    saved = json.loads((tmp_path / "report.json").read_text())
    for key in ("task", "capabilities", "budget", "requirement", "initial", "policies"):
        assert key in saved
    assert saved["budget"] == {"total_tokens": 1500, "accounting": "artifact"}
    assert set(saved["requirement"]) >= {"estimated", "true"}
    assert abs(sum(saved["requirement"]["estimated"]) - 1) < 1e-6
    assert len(saved["requirement"]["interventions"]) == 2
    assert set(saved["policies"]) == {"read", "uniform", "one_hot"}
    for name, p in saved["policies"].items():
        assert p["tokens_used"] <= 1500
        assert set(p["profile"]) == set(saved["capabilities"])
        assert len(p["allocations"]) == p["intervals"] and all(len(a) == 8 for a in p["allocations"])
        assert 0.0 <= p["utility"] <= 1.0
        assert 0.0 < p["overhead_share"] < 1.0
        assert set(p["phase_seconds"]) >= {"generate", "train", "probe", "bandit", "bookkeeping"}
        assert (tmp_path / "runs" / p["policy"] / "history.jsonl").is_file()
    # one-hot spends everything on the top capability of the estimated requirement
    top = int(np.argmax(saved["requirement"]["estimated"]))
    assert all(a[top] == 1.0 for a in saved["policies"]["one_hot"]["allocations"])
    for plot in ("allocations.png", "profiles.png", "utility_vs_tokens.png"):
        assert (tmp_path / plot).stat().st_size > 1000
    assert "uniform" in format_table(report)

    # a finished experiment is reused, a different config in the same directory is refused
    with pytest.raises(ReadJaxError, match="different experiment"):
        Experiment(ExperimentConfig(loop=TINY.loop, policies=("uniform",)), tmp_path, components=_components())
