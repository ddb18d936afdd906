"""Probe suite and task scores against direct computations with the model's forward pass."""

import functools

import jax
import numpy as np
import pytest
from flax import nnx

from read_jax.capabilities.probes import ProbeSuite, answer_tokens, task_loglik, task_utility
from tiny_world import tiny_components


@functools.lru_cache(maxsize=None)
def _forward(model):
    graphdef, state = nnx.split(model)
    return jax.jit(lambda ids, mask: jax.nn.log_softmax(nnx.merge(graphdef, state)(ids, attention_mask=mask), -1))


def _direct_loglik(model, prompt_ids, answer_ids, length=96):
    seq = prompt_ids + answer_ids
    ids, mask = np.zeros((1, length), np.int32), np.zeros((1, length), np.int32)
    ids[0, :len(seq)], mask[0, :len(seq)] = seq, 1   # right padding leaves the real positions unchanged
    logp = np.asarray(_forward(model)(ids, mask)[0])
    p = len(prompt_ids)
    return float(np.mean([logp[p - 1 + i, a] for i, a in enumerate(answer_ids)]))


@pytest.fixture(scope="module")
def setup():
    c = tiny_components("code_tool")
    probes = c.source.probe_suite(3, seed=0)
    suite = ProbeSuite(c.source.capabilities, probes, c.teacher, c.tokenizer, c.encode_prompt, max_new_tokens=8)
    return c, suite


def test_probe_loglik_is_the_mean_answer_loglik_per_capability(setup):
    c, suite = setup
    scores = suite.loglik(c.student)
    for ci in range(len(c.source.capabilities)):
        direct = [_direct_loglik(c.student, c.encode_prompt(p), answer_tokens(c.tokenizer, a))
                  for p, a, o in zip(suite.prompts, suite.teacher_answers, suite.owner) if o == ci]
        np.testing.assert_allclose(scores[ci], np.mean(direct), rtol=1e-4, atol=1e-4)


def test_teacher_matches_its_own_probe_answers(setup):
    c, suite = setup
    np.testing.assert_array_equal(suite.exact_match(c.teacher), np.ones(len(c.source.capabilities)))
    assert (suite.loglik(c.teacher) <= 0).all()


def test_task_scores(setup):
    c, _ = setup
    dev = c.task.split("dev")
    direct = np.mean([_direct_loglik(c.student, c.encode_prompt(e.prompt), answer_tokens(c.tokenizer, e.answer))
                      for e in dev])
    assert task_loglik(c.student, c.task, c.tokenizer, c.encode_prompt, "dev") == pytest.approx(direct, abs=1e-4)
    u = task_utility(c.student, c.task, c.tokenizer, c.encode_prompt, "dev", max_new_tokens=8)
    assert 0.0 <= u <= 1.0 and u * len(dev) == pytest.approx(round(u * len(dev)))
