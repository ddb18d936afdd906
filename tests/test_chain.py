"""Chained tasks: a request answered as a chain of capability requests (read_jax.capabilities.chain,
read_jax.worlds.chain_tasks), checked against the world's solvers and a step-by-step reference."""

import numpy as np
import pytest

from read_jax.capabilities.chain import ChainBroken, TaskChain, chain_completions
from read_jax.capabilities.registry import Example
from read_jax.capabilities.probes import answer_tokens, greedy_answers, task_loglik
from read_jax.errors import ReadJaxError
from read_jax.evals.evaluate import evaluate_model
from read_jax.worlds import World, WorldConfig
from read_jax.worlds.rationales import final_answer
from test_probes import _direct_loglik
from tiny_world import tiny_components


@pytest.fixture(scope="module")
def world():
    return World(0, WorldConfig.preset("tiny"))


def test_exact_answers_at_every_step_solve_every_chained_task(world):
    assert world.chained_task_names
    for name in world.chained_task_names:
        task = world.task(name)
        assert task.chain is not None and task.metric_kind == "chain" and task.true_r is not None
        finals = chain_completions(task.chain, task.dev, lambda prompts: [world.solve(p) for p in prompts])
        assert finals == [e.answer for e in task.dev]
        assert task.utility(finals) == 1.0
        # each step is an ordinary request of a capability the task's true r names
        needed = {c for c, r in zip(world.capabilities, task.true_r) if r > 0}
        for e in task.dev[:16]:
            steps = task.chain.reference_steps(e)
            assert len(steps) == task.chain.n_steps(e) == 2
            used = {t.capability for p, _ in steps for t, _ in world.all_templates.parse(p)}
            assert used == needed, (name, e.prompt, used)


def test_a_step_answer_that_cannot_feed_the_next_breaks_only_its_request(world):
    task = world.task("sum_timer")
    exs = task.dev[:4]
    calls = []

    def solve(p):
        try:
            return world.solve(p)
        except ReadJaxError:
            return "timer(?)"

    def answer(prompts):
        calls.append(list(prompts))
        if len(calls) == 1:  # the first request's sum comes back as a word the timer's argument cannot take
            return ["seven"] + [solve(p) for p in prompts[1:]]
        return [solve(p) for p in prompts]

    finals = chain_completions(task.chain, exs, answer)
    assert len(calls) == 2 and len(calls[1]) == 4       # the timer prompt is built from whatever came back
    assert finals[0] != exs[0].answer and finals[1:] == [e.answer for e in exs[1:]]
    # a step the chain cannot build (here: an intermediate answer that is not a number) ends that request
    finals = chain_completions(_Doubler(), [Example("2", "8"), Example("x", "?"), Example("3", "12")],
                               lambda ps: [p if p.isdigit() else "oops" for p in ps])
    assert isinstance(_Doubler(), TaskChain)
    assert finals == ["2", "", "3"]  # echoes: the doubling steps ran for the numbers only
    with pytest.raises(ReadJaxError, match="answers for"):
        chain_completions(task.chain, task.dev[:3], lambda ps: ps[:1])


class _Doubler:
    """Two steps: the prompt itself, then the step-1 answer again (which must be a number)."""

    def n_steps(self, example):
        return 2

    def step_prompt(self, example, answers):
        if answers and not answers[0].isdigit():
            raise ChainBroken(f"{answers[0]!r} is not a number")
        return example.prompt if not answers else answers[0]

    def combine(self, example, answers):
        return answers[-1]

    def reference_steps(self, example):
        return []


def test_a_rationale_before_a_step_answer_is_not_fed_forward(world):
    task = world.task("program_timer")
    finals = chain_completions(task.chain, task.dev[:8], lambda ps: [f"because; {world.solve(p)}" for p in ps])
    assert [final_answer(f) for f in finals] == [e.answer for e in task.dev[:8]]


def test_evaluation_runs_the_chain_with_the_models_greedy_answers():
    """evaluate_model on a chained task = the model's greedy answer to step 1, the step-2 prompt built
    from it, the model's greedy answer to that, assembled: computed here by hand."""
    c = tiny_components("older_fact")
    task, world = c.task, c.source
    exs = task.dev[:12]
    first = greedy_answers(c.student, c.tokenizer, c.encode_prompt, [task.chain.step_prompt(e, []) for e in exs],
                           max_new_tokens=8)
    expected = []
    for e, a in zip(exs, first):
        try:
            second = task.chain.step_prompt(e, [a])
        except ReadJaxError:
            expected.append("")
            continue
        b = greedy_answers(c.student, c.tokenizer, c.encode_prompt, [second], max_new_tokens=8)[0]
        expected.append(task.chain.combine(e, [a, b]))
    result = evaluate_model(c.student, c.tokenizer, c.encode_prompt, task, "dev", limit=12, max_new_tokens=8,
                            progress=False)
    assert [r["completion"] for r in result.results] == expected
    assert result.score == pytest.approx(np.mean([task.score(p, e) for p, e in zip(expected, exs)]))
    assert world.oracle(exs[0]) == exs[0].answer


def test_a_chained_tasks_smooth_utility_scores_every_reference_step():
    c = tiny_components("record_fact")
    dev = c.task.split("dev")
    direct = np.mean([_direct_loglik(c.student, c.encode_prompt(p), answer_tokens(c.tokenizer, a))
                      for e in dev for p, a in c.task.chain.reference_steps(e)])
    assert task_loglik(c.student, c.task, c.tokenizer, c.encode_prompt, "dev") == pytest.approx(direct, abs=1e-4)


def test_chained_tasks_stay_out_of_training_streams_and_inside_the_leakage_filter(world):
    chained = {e.prompt for n in world.chained_task_names for e in world.task(n).dev + world.task(n).test}
    assert chained and not chained & set(world.eval_prompts())   # the recipes' filters (their streams predate them)
    assert chained <= set(world.eval_prompts(chained=True))
    leak = world.leakage_filter()
    assert all(leak.is_leaked(p) for p in chained)
    # a step is an ordinary capability request and stays distillable (World.leakage_filter says why)
    steps = {p for n in world.chained_task_names for e in world.task(n).test for p, _ in world.task(n).chain.reference_steps(e)}
    assert not any(leak.is_leaked(p) for p in steps - set(world.eval_prompts()))
    # the teacher-training mixture never draws a chained task's request
    names = {e.task for e in world.mixture(400, seed=0, task_share=0.5) if e.task}
    assert names and not names & set(world.chained_task_names)


def test_a_step_is_asked_in_the_capabilitys_own_templates(world):
    """World.request: a template of the step's op that the preset uses, whose fixed slots agree, the
    same one for the same request, and several across requests (as the capability's own requests vary)."""
    active = {t.id for t in world.library}
    for name in world.chained_task_names:
        task = world.task(name)
        used = []
        for e in task.dev:
            for k, (prompt, _) in enumerate(task.chain.reference_steps(e)):
                parsed = [t for t, _ in world.all_templates.parse(prompt) if t.id in active]
                assert parsed, (name, prompt)
                if k == 0:
                    used.append(parsed[0].id)
        assert len(set(used)) > 1, name
    assert world.request("fact", "k", e="jim", attr="city") == world.request("fact", "k", e="jim", attr="city")
    asked = {world.request("fact", str(i), e="jim", attr="city") for i in range(40)}
    assert "where does jim live?" in asked and "city of jim?" in asked and not any("old" in p for p in asked)
    with pytest.raises(ReadJaxError, match="no template of op"):
        world.request("nope", "k", e="jim")


def test_the_chained_tasks_script_scores_each_step_and_refuses_an_unknown_capability(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "chained_tasks.py"
    spec = importlib.util.spec_from_file_location("chained_tasks", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    c = tiny_components("sum_timer")
    scores = script.chained_scores(c.student, c.source, "dev")
    assert set(scores) == set(c.source.chained_task_names)
    for row in scores.values():
        assert set(row) == {"utility", "step1", "step2"} and all(0.0 <= v <= 1.0 for v in row.values())
    assert script.main(["--gold", "cooking"]) == 2
    assert "unknown capability 'cooking'" in capsys.readouterr().err
