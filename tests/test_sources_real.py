"""The real data source end to end on tiny random HF models with a local chat tokenizer: the same
experiment code as the synthetic world, with the read8 capability pack and a pack-built task."""

from __future__ import annotations

import json

import numpy as np
import pytest

from real_fixtures import make_real_pair
from read_jax.errors import ReadJaxError
from read_jax.experiment import Experiment, ExperimentConfig
from read_jax.loop import GenerationConfig, LoopConfig, TrainConfig
from read_jax.sources.config import RealSourceConfig

pytest.importorskip("read_jax.capabilities.pack", reason="the read8 capability pack is not installed")


def _config(teacher, student, **real) -> ExperimentConfig:
    real = {"pack_tasks": {"mix": {"math": 0.5, "tool_use": 0.5}}, "pack_task_sizes": (4, 6), **real}
    loop = LoopConfig(task="mix", budget_tokens=2400, intervals=2, probes_per_capability=3, dev_every=1.0,
                      max_prompt_tokens=2048,
                      generation=GenerationConfig(max_new_tokens=12, prompts_per_call=8, keep_unfinished=True),
                      train=TrainConfig(rows=8, max_length=512))
    return ExperimentConfig(source="real", teacher=str(teacher), student=str(student), loop=loop,
                            real=RealSourceConfig(**real), policies=("read_ucb", "uniform"), requirement="uniform")


def test_real_source_runs_the_experiment_on_a_mesh(tmp_path, eight_devices):
    teacher, student = make_real_pair(tmp_path)
    report = Experiment(_config(teacher, student, mesh=(2, 2, 2)), tmp_path / "exp", progress=False).run()
    caps = report["capabilities"]
    assert len(caps) == 8 and report["components"]["source"] == "real"
    true_r = dict(zip(caps, report["requirement"]["true"]))  # the pack task's mixture, for the report only
    assert true_r["math"] == true_r["tool_use"] == 0.5 and report["requirement"]["metrics"] is not None
    for name, p in report["policies"].items():
        assert 0.0 <= p["utility"] <= 1.0, name
        assert 0 < p["tokens_used"] <= 2400, name
        assert set(p["profile"]) == set(caps)
        for alloc in p["allocations"]:
            assert abs(sum(alloc) - 1.0) < 1e-5 and min(alloc) >= 0
    samples = report["teacher"]["probe_samples"]
    assert {s["capability"] for s in samples} == set(caps)
    assert all(isinstance(s["teacher_answer"], str) for s in samples)
    # the run wrote its history with the real teacher's generated-token counts
    history = [json.loads(x) for x in (tmp_path / "exp" / "runs" / "uniform" / "history.jsonl").read_text().splitlines()]
    assert sum(h["tokens"]["generated"] for h in history) > 0


def test_task_prompts_never_reach_the_generated_stream(tmp_path):
    from read_jax.experiment import build_components

    teacher, student = make_real_pair(tmp_path)
    c = build_components(_config(teacher, student))
    sampler = c.source.prompt_sampler(seed=0)
    evals = {e.prompt for e in c.task.dev + c.task.test}
    drawn = [sampler.draw(np.asarray([0, 0, 0, 0.5, 0, 0.5, 0, 0])).prompt for _ in range(200)]
    assert not evals & set(drawn)
    assert all(sampler.leakage.is_leaked(p) for p in evals)


def test_different_vocabularies_fail_before_loading_weights(tmp_path, monkeypatch):
    import read_jax.models.hf as hf

    teacher, student = make_real_pair(tmp_path, student_vocab=400)
    monkeypatch.setattr(hf, "load_hf", lambda *a, **k: pytest.fail("weights were loaded"))
    with pytest.raises(ReadJaxError, match=r"student .*vocabulary size 400 differs from the teacher's"):
        Experiment(_config(teacher, student), tmp_path / "exp", progress=False)
    assert not (tmp_path / "exp").exists()  # nothing written


def test_tokenizer_without_chat_template_says_how_to_pass_one(tmp_path):
    teacher, student = make_real_pair(tmp_path, chat_template=None)
    with pytest.raises(ReadJaxError, match=r"no chat template; pass one .*real.chat_template"):
        Experiment(_config(teacher, student), tmp_path / "exp", progress=False)
    (tmp_path / "chat.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    cfg = _config(teacher, student, chat_template=str(tmp_path / "chat.jinja"))
    from read_jax.experiment import build_components

    assert build_components(cfg).tokenizer.chat_template.startswith("{% for m")


def test_unknown_task_names_both_places_it_looked(tmp_path):
    teacher, student = make_real_pair(tmp_path)
    cfg = _config(teacher, student)
    import dataclasses

    cfg = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, task="nope"))
    with pytest.raises(ReadJaxError, match="not in real.pack_tasks and no real.cards"):
        Experiment(cfg, tmp_path / "exp", progress=False)


def test_a_mesh_that_does_not_match_the_devices_is_one_line(tmp_path):
    teacher, student = make_real_pair(tmp_path)
    with pytest.raises(ReadJaxError, match=r"real.mesh: mesh shape \(3, 1, 1\) needs 3 devices, have 8"):
        Experiment(_config(teacher, student, mesh=(3, 1, 1)), tmp_path / "exp", progress=False)
    with pytest.raises(ReadJaxError, match="real.mesh: expected"):
        RealSourceConfig(mesh=(2, 2))


def test_cli_bad_real_config_exits_2_with_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import yaml

    from read_jax.cli import main

    monkeypatch.setenv("READ_JAX_MALLOC", "default")  # no malloc restart inside the test process
    teacher, student = make_real_pair(tmp_path, student_vocab=400)
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"source": "real", "teacher": str(teacher), "student": str(student),
                                      "real": {"pack_tasks": {"mix": {"math": 1.0}}}, "loop": {"task": "mix"}}))
    capsys.readouterr()  # the fixture's own output
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error" in line.lower() or "Traceback" in line]
    assert errors == [err[-1]] and err[-1].startswith("read-jax run: error: student ")
    assert "vocabulary size 400 differs" in err[-1]
    assert not (tmp_path / "out").exists()
