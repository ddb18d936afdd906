"""The ReAD loop on tiny random models: budget, history, checkpoints, exact resume."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from read_jax.loop import GenerationConfig, LoopConfig, ReadRun, TrainConfig
from tiny_world import tiny_components


@pytest.fixture(scope="module")
def components():
    return tiny_components("word_problem")


# the random tiny teacher rarely emits eos: keep its cut-off answers so that the run trains
CONFIG = LoopConfig(budget_tokens=2400, intervals=3, probes_per_capability=3, dev_every=0.5,
                    generation=GenerationConfig(max_new_tokens=8, prompts_per_call=16, keep_unfinished=True),
                    train=TrainConfig(rows=8))
R = np.asarray([0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.5])


def _strip(history):
    return [{k: v for k, v in h.items() if k != "timing"} for h in history]


def test_interrupted_run_resumes_exactly(tmp_path, components):
    full = ReadRun(CONFIG, components, tmp_path / "full", R, progress=False)
    full.run()
    probes = full.probes  # the teacher-answered probes are deterministic; reuse them to save time

    part = ReadRun(CONFIG, components, tmp_path / "part", R, probes=probes, progress=False)
    part.step()
    part.step()
    part.flush()  # interval 2's checkpoint is on disk (saves are written in the background)
    del part  # "crash" after interval 2

    resumed = ReadRun(CONFIG, components, tmp_path / "part", R, probes=probes, progress=False)
    resumed.load()
    assert resumed.t == 2
    resumed.run()

    assert _strip(resumed.history) == _strip(full.history)
    a, b = nnx.state(full.student), nnx.state(resumed.student)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    lines = (tmp_path / "part" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2]

    # the budget is a hard limit, and every interval's tokens add up to it
    for run in (full, resumed):
        assert run.budget.used <= CONFIG.budget_tokens
        assert run.budget.teacher_used <= run.budget.teacher_limit
        assert run.budget.student_used <= run.budget.student_limit
        spent = sum(h["tokens"]["generated"] + h["tokens"]["prompt"] + h["tokens"]["label"] for h in run.history)
        assert spent == run.budget.used
    # allocations are distributions over the capabilities; dev checkpoints happened
    for h in full.history:
        assert abs(sum(h["allocation"]) - 1.0) < 1e-5 and min(h["allocation"]) >= 0
    assert any(h["dev_utility"] is not None for h in full.history)
    assert sum(h["tokens"]["examples"] for h in full.history) > 0


def test_unfinished_answers_are_not_trained_on(tmp_path, components):
    def first_interval(keep_unfinished: bool) -> dict:
        config = LoopConfig(budget_tokens=800, intervals=1, probes_per_capability=2, dev_every=1.0,
                            generation=GenerationConfig(max_new_tokens=4, prompts_per_call=16,
                                                        keep_unfinished=keep_unfinished), train=TrainConfig(rows=8))
        return ReadRun(config, components, tmp_path / str(keep_unfinished), R, progress=False).step()

    dropped, kept = first_interval(False), first_interval(True)  # same seed: the same first teacher answers
    assert dropped["tokens"]["unfinished"] > 0  # a random teacher almost never stops within 4 tokens
    assert kept["tokens"]["unfinished"] == 0 and kept["tokens"]["examples"] > 0
    # dropping them trains on fewer answers than keeping them
    assert dropped["tokens"]["examples"] < kept["tokens"]["examples"]
    assert dropped["tokens"]["examples"] == sum(dropped["examples_per_capability"])
