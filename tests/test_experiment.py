"""A tiny end-to-end experiment through the demo's code path (Experiment.run), on random tiny models."""

import dataclasses
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
                    generation=GenerationConfig(max_new_tokens=8, prompts_per_call=16, keep_unfinished=True),
                    train=TrainConfig(rows=8, optimizer=dataclasses.replace(TrainConfig().optimizer, warmup_steps=2))),
    policies=("read_ucb", "uniform", "one_hot"), requirement="interventions", interventions=2,
    intervention_tokens=400, eval_split="dev")


def test_tiny_experiment_writes_the_report(tmp_path):
    report = Experiment(TINY, tmp_path, components=_components(), progress=False).run()
    saved = json.loads((tmp_path / "report.json").read_text())
    for key in ("task", "capabilities", "budget", "requirement", "initial", "policies"):
        assert key in saved
    assert saved["budget"]["total_tokens"] == 1500 and saved["budget"]["accounting"] == "artifact"
    assert saved["budget"]["requirement_tokens"] == saved["requirement"]["tokens"] > 0  # reported, not charged
    assert saved["budget"]["policy_tokens"] == 1500 and not saved["budget"]["requirement_charged"]
    assert set(saved["requirement"]) >= {"estimated", "true"}
    assert abs(sum(saved["requirement"]["estimated"]) - 1) < 1e-6
    assert len(saved["requirement"]["interventions"]) == 2
    for pilot in (tmp_path / "interventions").iterdir():  # their ΔU is the experiment's own measurement
        rows = [json.loads(line) for line in (pilot / "history.jsonl").read_text().splitlines()]
        assert rows and all("dev_eval" not in r["timing"] and r["dev_utility"] is None for r in rows)
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


def test_the_paper_identifier_trains_on_auxiliary_tasks_only_and_is_cached(tmp_path):
    aux = ("quiz_desk", "word_problem", "code_tool")
    config = dataclasses.replace(TINY, requirement="identifier", identifier_tasks=("dev_assistant", *aux),
                                 identifier_interventions=2, policies=("uniform",),
                                 identifier_cache=str(tmp_path / "g_phi"))
    req = Experiment(config, tmp_path / "a", components=_components(), progress=False).requirement()
    r = np.asarray(req["estimated"])
    assert r.shape == (8,) and abs(r.sum() - 1) < 1e-6 and (r >= 0).all()
    ident = req["identifier"]
    assert ident["tasks"] == list(aux)  # the target is never an auxiliary task, even when listed
    assert req["interventions"] == [] and req["tokens"] == 0  # nothing spent on the target
    assert ident["tokens"] > 0 and set(ident["leave_one_task_out"]) == set(aux)
    for m in ident["leave_one_task_out"].values():
        assert 0 <= m["l1"] <= 2 and 0 <= m["topk_overlap"] <= 1
    cached = sorted(p.name for p in (tmp_path / "g_phi").glob("*/*.json"))
    assert cached == sorted(f"{t}.json" for t in aux)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "g_phi").rglob("*.json")}

    # another seed of the same world reuses the records (g_φ is trained once per world) and gets the same r
    other = dataclasses.replace(config, loop=dataclasses.replace(config.loop, seed=5))
    again = Experiment(other, tmp_path / "b", components=_components(), progress=False).requirement()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "g_phi").rglob("*.json")} == before
    np.testing.assert_allclose(again["estimated"], req["estimated"], atol=1e-6)


def test_charged_pilot_interventions_come_out_of_every_policy_budget(tmp_path):
    config = dataclasses.replace(TINY, charge_requirement=True, policies=("uniform",))
    report = Experiment(config, tmp_path, components=_components(), progress=False).run()
    pilot = report["requirement"]["tokens"]
    assert report["requirement"]["charged"] and 0 < pilot < 1500
    assert report["budget"]["policy_tokens"] == 1500 - pilot
    assert report["policies"]["uniform"]["tokens_used"] <= 1500 - pilot


def test_search_baselines_run_the_best_candidate_of_the_profiling_split(tmp_path):
    config = dataclasses.replace(TINY, policies=("one_hot_best", "grid"), requirement="uniform",
                                 search_tokens=200, search_max_candidates=4)
    from read_jax.sources import check_policies

    check_policies(config, _components().source.capabilities)  # what a source checks before loading models
    report = Experiment(config, tmp_path, components=_components(), progress=False).run()
    for name in ("one_hot_best", "grid"):
        found = json.loads((tmp_path / "search" / f"{name}.json").read_text())
        best = int(np.argmax(found["profiling_delta_u"]))
        assert found["allocation"] == found["candidates"][best] and found["tokens"] > 0
        p = report["policies"][name]
        assert p["search"]["allocation"] == found["allocation"] and p["search"]["tokens"] == found["tokens"]
        assert all(np.allclose(a, found["allocation"]) for a in p["allocations"])  # a fixed allocation
        assert (tmp_path / "runs" / name / "history.jsonl").is_file() and p["run_dir"] == name
    one_hots = json.loads((tmp_path / "search" / "one_hot_best.json").read_text())["candidates"]
    assert np.array_equal(one_hots, np.eye(8))
    assert len(json.loads((tmp_path / "search" / "grid.json").read_text())["candidates"]) <= 4


def test_one_hot_variants_run_with_their_teacher_signal_and_objective(tmp_path):
    """`one_hot.<signal>_<objective>`: the one-hot run with that supervision, at the same spend;
    unknown variants are refused when the config is parsed."""
    variants = ("one_hot.resp_kd", "one_hot.logit_sft", "one_hot.logit_kd", "one_hot.cot_sft", "one_hot.cot_kd")
    config = dataclasses.replace(TINY, policies=variants, requirement="uniform")
    report = Experiment(config, tmp_path, components=_components(), progress=False).run()
    loops = {}
    for name in variants:
        p = report["policies"][name]
        assert p["policy"] == "one_hot" and p["tokens_used"] >= 0.98 * TINY.loop.budget_tokens
        assert all(max(a) == 1.0 for a in p["allocations"])
        loops[name] = json.loads((tmp_path / "runs" / name / "run.json").read_text())["config"]
    assert loops["one_hot.resp_kd"]["train"]["loss"]["kl"] == 1.0 == 1.0 + loops["one_hot.resp_kd"]["train"]["loss"]["ce"]
    assert loops["one_hot.logit_sft"]["generation"]["temperature"] == 0.0
    assert loops["one_hot.logit_kd"]["generation"]["topk_logprobs"] == 20
    assert loops["one_hot.logit_kd"]["train"]["loss"]["topk_kl"] == 1.0
    for name in ("one_hot.cot_sft", "one_hot.cot_kd"):  # the teacher asked for rationales, longer answers
        assert loops[name]["generation"]["rationale"] and loops[name]["generation"]["max_new_tokens"] == 64
    assert loops["one_hot.cot_kd"]["train"]["loss"]["topk_kl"] == 1.0 == 1.0 + loops["one_hot.cot_kd"]["train"]["loss"]["ce"]
    with pytest.raises(ReadJaxError, match="unknown one-hot variant") as info:
        ExperimentConfig(loop=TINY.loop, policies=("one_hot.resp_rl",))
    assert "\n" not in str(info.value)
