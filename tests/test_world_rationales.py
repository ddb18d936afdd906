"""Rationales (the CoT teacher signal): one per capability op, computed like the answer, scored by
the final answer only."""

import itertools

import numpy as np
import pytest

from read_jax.errors import ReadJaxError
from read_jax.worlds import World, WorldConfig
from read_jax.worlds.ops import OPS
from read_jax.worlds.rationales import COT_MARK, RATIONALE_SEP, RATIONALES, final_answer


@pytest.fixture(scope="module", params=["tiny", "default"])
def world(request):
    return World(0, WorldConfig.preset(request.param))


def test_every_capability_op_has_a_rationale():
    assert set(RATIONALES) == set(OPS)


def test_rationales_are_right_and_never_contain_the_separator(world):
    for c in world.capabilities:
        for ex in world.sample(c, 200, seed=5):
            cot = world.with_rationale(ex)
            rationale, answer = cot.answer.rsplit(RATIONALE_SEP, 1)
            assert answer == ex.answer and RATIONALE_SEP.strip() not in rationale + ex.answer
            assert cot.prompt == COT_MARK + ex.prompt and cot.capability == c
            assert world.score(cot.answer, ex) == 1.0 and world.score(ex.answer, cot) == 1.0


def test_rationales_carry_the_intermediate_step():
    """Spot checks against the op's own semantics: the step a person would write first."""
    world = World(0, WorldConfig.preset("tiny"))
    for ex in world.sample("multilingual", 50, seed=1):
        words = world.rationale(ex).split(" ")
        assert " ".join(w.split("=")[1] for w in words) == ex.answer   # word by word
    for ex in world.sample("steerability", 50, seed=1):
        assert world.rationale(ex).split(" ")[-1].split(">", 1)[1] == ex.answer  # the last op's result
    for ex in world.sample("reasoning", 50, seed=1):
        slots = dict(ex.slots)
        attr = "city" if ex.template_id.startswith("re.same") else "age"
        assert world.rationale(ex) == (f"{slots['x']} {world.data.kb[slots['x']][attr]}, "
                                       f"{slots['y']} {world.data.kb[slots['y']][attr]}")


def test_scoring_reads_the_final_answer(world):
    ex = world.sample("math", 1, seed=2)[0]
    assert final_answer(f"1+2{RATIONALE_SEP}{ex.answer}") == ex.answer
    assert world.score(f"anything{RATIONALE_SEP}{ex.answer}", ex) == 1.0
    assert world.score(f"{ex.answer}{RATIONALE_SEP}wrong", ex) == 0.0
    task = world.task("dev_assistant")  # tasks score the same way
    assert task.score(f"x{RATIONALE_SEP}{task.dev[0].answer}", task.dev[0]) == 1.0


def test_rationales_only_for_capability_examples(world):
    composite = world.sample("word_problem", 1, seed=0)[0]
    with pytest.raises(ReadJaxError, match="capability examples only"):
        world.with_rationale(composite)


def test_mixture_asks_for_rationales_at_the_given_share():
    world = World(0, WorldConfig.preset("tiny"))
    plain = world.mixture(300, seed=3)
    assert plain == world.mixture(300, seed=3, cot_share=0.0)  # the recipes without rationales keep their stream
    stream = list(itertools.islice(world.iter_mixture(3, cot_share=0.3), 3000))
    marked = [e for e in stream if e.prompt.startswith(COT_MARK)]
    caps = [e for e in stream if e.capability]
    assert all(e.capability for e in marked)
    assert np.isclose(len(marked) / len(caps), 0.3, atol=0.04)
    for e in marked[:200]:  # the plain prompt's answer, after its rationale
        assert RATIONALE_SEP in e.answer
        assert world.solve(e.prompt.removeprefix(COT_MARK), e.capability) == final_answer(e.answer)
    with pytest.raises(ReadJaxError, match="cot_share"):
        next(world.iter_mixture(0, cot_share=1.5))
