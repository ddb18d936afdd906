"""The ReAD loop on tiny random models: budget, history, checkpoints, exact resume."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from flax import nnx

from read_jax.bandit import build_candidate_actions, paper_action_set
from read_jax.bandit.ensemble import PersistentEnsembleState
from read_jax.errors import ReadJaxError
from read_jax.loop import BanditConfig, GenerationConfig, LoopConfig, ReadRun, TrainConfig
from tiny_world import tiny_components


@pytest.fixture(scope="module")
def components():
    return tiny_components("word_problem")


# the random tiny teacher rarely emits eos: keep its cut-off answers so that the run trains
CONFIG = LoopConfig(budget_tokens=2400, intervals=3, probes_per_capability=3, dev_every=0.5,
                    generation=GenerationConfig(max_new_tokens=8, prompts_per_call=16, keep_unfinished=True),
                    train=TrainConfig(rows=8))
R = np.asarray([0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.5])
# ReAD the paper's way: the ensemble with a persistent optimiser on the paper's action set, one-hots off;
# one warm-up step (not 5) so that intervals 1 and 2 are UCB decisions of a refitted model
PAPER = dataclasses.replace(CONFIG, policy="read_paper",
                            bandit=BanditConfig(action_set="paper", include_one_hot=False, warmup=1))


def _strip(history):
    return [{k: v for k, v in h.items() if k != "timing"} for h in history]


@pytest.mark.parametrize("config", [CONFIG, PAPER], ids=["default", "read_paper"])
def test_interrupted_run_resumes_exactly(tmp_path, components, config):
    full = ReadRun.open(config, components, tmp_path / "full", R, progress=False)
    full.run()
    probes = full.probes  # the teacher-answered probes are deterministic; reuse them to save time

    part = ReadRun.open(config, components, tmp_path / "part", R, probes=probes, progress=False)
    part.step()
    part.step()
    part.flush()  # interval 2's checkpoint is on disk (saves are written in the background)
    del part  # "crash" after interval 2

    resumed = ReadRun.open(config, components, tmp_path / "part", R, probes=probes, progress=False)
    assert resumed.t == 2  # opened at its latest checkpoint
    resumed.run()

    assert _strip(resumed.history) == _strip(full.history)
    a, b = nnx.state(full.student), nnx.state(resumed.student)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for x, y in zip(jax.tree.leaves(full.policy_state), jax.tree.leaves(resumed.policy_state)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    if config is PAPER:
        _check_paper_actions(full)
    lines = (tmp_path / "part" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2]

    # the budget is a hard limit, every policy spends it (equal spend: the last interval pools it and
    # re-passes its answers), and every interval's tokens add up to it
    for run in (full, resumed):
        assert (1 - ReadRun.MAX_UNSPENT) * CONFIG.budget_tokens <= run.budget.used <= CONFIG.budget_tokens
        assert run.budget.pooled and "repassed" in run.history[-1]["tokens"]
        assert run.budget.teacher_used <= run.budget.teacher_limit
        assert run.budget.student_used <= run.budget.student_limit
        spent = sum(h["tokens"]["generated"] + h["tokens"]["prompt"] + h["tokens"]["label"] for h in run.history)
        assert spent == run.budget.used
    # allocations are distributions over the capabilities; dev checkpoints happened
    for h in full.history:
        assert abs(sum(h["allocation"]) - 1.0) < 1e-5 and min(h["allocation"]) >= 0
    assert any(h["dev_utility"] is not None for h in full.history)
    assert sum(h["tokens"]["examples"] for h in full.history) > 0


def _check_paper_actions(run):
    """read_paper played the sparse set (no one-hots) first, then a member of the paper set around the
    previous allocation; its Adam state was carried across the refits."""
    assert run.policy.name == "read_paper" and run.policy.warmup == 1 and run.policy.persistent_optimizer
    assert isinstance(run.policy_state.model, PersistentEnsembleState)
    counts = np.asarray(run.policy_state.model.opt_state[0].count)
    assert np.all(counts == 2 * run.policy.ensemble_config.train_steps)  # refits before intervals 1 and 2
    caps, b = list(run.caps), run.config.bandit
    sparse = build_candidate_actions(caps, R.tolist(), 2, list(b.weight_grid), b.top_k, b.max_candidates, False)
    assert all(max(w) < 1.0 for w in sparse)
    assert run.actions.shape[0] == 1 + 3 * 2 + len(sparse) and run.action_mask.sum() == len(sparse)
    prev = None
    for h in run.history:
        cands = sparse if prev is None else paper_action_set(caps, R.tolist(), prev, b.local_step, list(b.weight_grid),
                                                             b.top_k, b.max_candidates, False)
        assert np.any(np.all(np.abs(np.asarray(cands) - np.asarray(h["allocation"])) <= 1e-5, axis=1)), h
        prev = h["allocation"]


def test_unfinished_answers_are_not_trained_on(tmp_path, components):
    def first_interval(keep_unfinished: bool) -> dict:
        config = LoopConfig(budget_tokens=800, intervals=1, probes_per_capability=2, dev_every=1.0,
                            generation=GenerationConfig(max_new_tokens=4, prompts_per_call=16,
                                                        keep_unfinished=keep_unfinished), train=TrainConfig(rows=8))
        return ReadRun.open(config, components, tmp_path / str(keep_unfinished), R, progress=False).step()

    dropped, kept = first_interval(False), first_interval(True)  # same seed: the same first teacher answers
    assert dropped["tokens"]["unfinished"] > 0  # a random teacher almost never stops within 4 tokens
    assert kept["tokens"]["unfinished"] == 0 and kept["tokens"]["examples"] > 0
    # dropping them trains on fewer answers than keeping them
    assert dropped["tokens"]["examples"] < kept["tokens"]["examples"]
    assert dropped["tokens"]["examples"] == sum(dropped["examples_per_capability"])


def test_a_run_that_cannot_spend_its_budget_stops_loudly(tmp_path, components):
    """No finished answer in the last interval leaves nothing to re-pass: the run refuses to report a
    policy that is not at equal spend, in one line naming the run and the fix."""
    config = LoopConfig(budget_tokens=800, intervals=1, probes_per_capability=2, dev_every=1.0,
                        generation=GenerationConfig(max_new_tokens=2, prompts_per_call=16), train=TrainConfig(rows=8))
    run = ReadRun.open(config, components, tmp_path / "run", R, progress=False)
    with pytest.raises(ReadJaxError, match="tokens unspent") as info:
        run.run()
    assert "\n" not in str(info.value) and str(tmp_path / "run") in str(info.value)
    assert run.history[-1]["tokens"]["examples"] == 0


@pytest.mark.parametrize("accounting", ["artifact", "paper"])
def test_repasses_fill_the_room_left_exactly(tmp_path, components, accounting):
    """The last interval's re-passes cycle over its answers in order and cut one to the tokens left, so
    the student's room ends at 0 (under the artifact's accounting: unless it is smaller than any
    prompt + one label)."""
    from read_jax.distill.batching import TokenExample

    config = dataclasses.replace(CONFIG, accounting=accounting, intervals=1)
    run = ReadRun.open(config, components, tmp_path / accounting, R, progress=False)
    run.budget.pool()
    fresh = [(TokenExample([1] * 9, [2] * 5), "math"), (TokenExample([1] * 3, [2] * 11), "code")]
    for room in (1, 4, 7, 13, 14, 40, 333):
        run.budget.student_used = run.budget.student_limit - room
        examples, caps = run._repasses(fresh)
        cost = sum(run.budget.training_cost(len(e.prompt), len(e.response)) for e in examples)
        # artifact: an example costs its prompt too, so less than the shortest prompt + 1 can stay unspent
        assert cost == room or (accounting == "artifact" and room < 4 and cost == 0), (room, cost)
        assert caps == ["math" if len(e.prompt) == 9 else "code" for e in examples]
    assert [len(e.prompt) for e in examples[:6]] == [9, 3] * 3  # cyclically, in order


def test_the_logit_signal_trains_on_the_teachers_top_k_captured_at_generation(tmp_path, components):
    """``generation.topk_logprobs`` captures the teacher's top-k with every answer token; the examples
    trained on carry them aligned with the answer (greedy: the top-1 id is the answer's token)."""
    from read_jax.distill import LossConfig

    config = LoopConfig(budget_tokens=800, intervals=1, probes_per_capability=2, dev_every=1.0,
                        generation=GenerationConfig(max_new_tokens=8, prompts_per_call=16, keep_unfinished=True,
                                                    temperature=0.0, topk_logprobs=4),
                        train=TrainConfig(rows=8, loss=LossConfig(ce=0.0, topk_kl=1.0)))
    run = ReadRun.open(config, components, tmp_path / "run", R, progress=False)
    seen, train = [], run._train

    def spy(examples, caps, work):
        seen.extend(examples)
        return train(examples, caps, work)

    run._train = spy
    record = run.step()
    assert seen and np.isfinite(record["train_loss"])
    for ex in seen:
        ids, lps = np.asarray(ex.topk_ids), np.asarray(ex.topk_logprobs)
        assert ids.shape == lps.shape == (len(ex.response), 4)
        np.testing.assert_array_equal(ids[:, 0], ex.response)
        assert np.all(lps <= 1e-6) and np.all(np.diff(lps, axis=1) <= 1e-6)  # log-probs, best first
    with pytest.raises(ReadJaxError, match="loop.generation.topk_logprobs"):
        dataclasses.replace(config, generation=GenerationConfig())


def test_ablation_switches_turn_off_calibration_kappa_shrinking_and_rho(tmp_path, components, monkeypatch):
    """Dev checkpoints whose utility rises with the proxy reward, then stalls: with the switches on the
    reward scale becomes the fitted slope and κ shrinks; with ``calibrate`` / ``shrink_kappa`` off the
    scale stays 1 and κ where it started.  ``context_rho`` off zeroes ρ in the context."""
    from read_jax.loop import run as run_module

    runs = {}
    for name, bandit in (("on", BanditConfig()),
                         ("off", BanditConfig(calibrate=False, shrink_kappa=False, context_rho=False))):
        run = ReadRun.open(dataclasses.replace(CONFIG, policy="read_ucb", bandit=bandit), components,
                           tmp_path / name, R, probes=runs["on"][0].probes if runs else None, progress=False)
        kappa0 = np.asarray(run.policy_state.kappa)
        for proxy, utility in ((0.1, 0.2), (0.3, 0.6), (0.4, 0.55)):  # rising with the proxy, then a stall
            run.cum_proxy = proxy
            monkeypatch.setattr(run_module, "task_utility", lambda *a, u=utility, **k: u)
            run._dev_eval()
        runs[name] = (run, kappa0)
    on, kappa0 = runs["on"]
    assert on.reward_scale != 1.0 and np.asarray(on.policy_state.kappa) < kappa0
    off, kappa0 = runs["off"]
    assert off.reward_scale == 1.0 and np.asarray(off.policy_state.kappa) == kappa0
    n, w = len(on.caps), np.full(len(on.caps), 1 / len(on.caps))
    on.w_prev = off.w_prev = w
    np.testing.assert_allclose(np.asarray(on._context(0.5))[-2 * n:-n], w, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(off._context(0.5))[-2 * n:], 0.0)
