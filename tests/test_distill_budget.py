"""Token budget (both accountings, property-based) and bucketed batching."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from read_jax.distill.batching import TokenExample, bucket_length, collate, make_batches
from read_jax.distill.budget import BudgetExceeded, TokenBudget
from read_jax.distill.losses import IGNORE_INDEX
from read_jax.errors import ReadJaxError

ops = st.lists(st.one_of(
    st.tuples(st.just("gen"), st.integers(0, 400)),
    st.tuples(st.just("train"), st.lists(st.tuples(st.integers(1, 60), st.integers(0, 80)), min_size=1, max_size=6)),
    st.tuples(st.just("truncate"), st.tuples(st.integers(1, 60), st.integers(1, 200))),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(limit=st.integers(0, 3000), accounting=st.sampled_from(["artifact", "paper"]),
       share=st.sampled_from([0.4, 0.0, 0.25, 1.0]), ops=ops, fit_first=st.booleans())
def test_no_sequence_of_batches_exceeds_the_limit(limit, accounting, share, ops, fit_first):
    b = TokenBudget(limit, accounting, teacher_share=share)
    for kind, arg in ops:
        before = b.state_dict()
        if kind == "gen":
            allowance = b.generation_allowance()
            n = arg if allowance is None or not fit_first else min(arg, allowance)
            try:
                b.charge_generation(n)
            except BudgetExceeded:
                assert b.state_dict() == before  # refused charges change nothing
                assert allowance is not None and n > allowance
        elif kind == "train":
            examples = arg
            if fit_first:  # the caller drops what does not fit
                examples = examples[:b.fit_count(examples)]
            p, l = sum(e[0] for e in examples), sum(e[1] for e in examples)
            try:
                b.charge_training(p, l)
            except BudgetExceeded:
                assert not fit_first
                assert b.state_dict() == before
        else:  # the caller truncates one example's labels to what fits
            p, l = arg
            keep = min(l, b.max_label_tokens(p))
            if keep:
                b.charge_training(p, keep)  # what max_label_tokens allows always fits
        # the invariant, under both accountings
        assert b.used <= b.limit
        assert b.teacher_used <= b.teacher_limit and b.student_used <= b.student_limit
        if accounting == "artifact":
            assert b.student_used == b.prompt_tokens + b.label_tokens
            assert b.teacher_used == b.generated_tokens
        else:
            assert b.student_used == b.label_tokens and b.teacher_used == 0
    assert TokenBudget.from_state_dict(b.state_dict()) == b


def test_artifact_split_and_paper_accounting():
    b = TokenBudget(1000, "artifact")
    assert (b.teacher_limit, b.student_limit) == (400, 600)
    b.charge_generation(400)
    with pytest.raises(BudgetExceeded):
        b.charge_generation(1)
    assert b.fit_count([(100, 200), (100, 200), (50, 10)]) == 2
    b.charge_training(100, 200)
    assert b.max_label_tokens(100) == 200 and b.max_label_tokens(400) == 0
    b.charge_training(300, 0)
    assert b.used == 1000 and b.remaining == 0 and b.exhausted
    with pytest.raises(BudgetExceeded, match="0 of 600 left"):
        b.charge_training(1, 0)

    p = TokenBudget(100, "paper")
    p.charge_generation(10_000)  # recorded, not charged
    assert p.used == 0 and p.generated_tokens == 10_000 and p.generation_allowance() is None
    assert p.fit_count([(500, 60), (500, 40), (1, 1)]) == 2  # prompts are free
    p.charge_training(1000, 100)
    assert p.exhausted and p.progress == 1.0


def test_budget_state_roundtrip_and_validation():
    b = TokenBudget(500, "artifact", teacher_share=0.4)
    b.charge_generation(7)
    b.charge_training(3, 4)
    again = TokenBudget.from_state_dict(b.state_dict())
    assert again == b and again.remaining == b.remaining
    with pytest.raises(ReadJaxError):
        TokenBudget(10, "other")
    with pytest.raises(ReadJaxError):
        TokenBudget.from_state_dict({**b.state_dict(), "student_used": 10_000})
    with pytest.raises(ReadJaxError):
        b.charge_training(-1, 2)


def test_bucket_length_powers_of_two():
    assert [bucket_length(n, 16) for n in (1, 16, 17, 100, 129)] == [16, 16, 32, 128, 256]
    assert bucket_length(300, 16, 256 + 64) == 320
    with pytest.raises(ReadJaxError):
        bucket_length(2049, 16, 2048)


def test_collate_layout_and_counts():
    e = TokenExample([5, 6, 7], [8, 9], topk_ids=[[8, 1], [9, 2]], topk_logprobs=[[-0.1, -3.0], [-0.2, -2.0]])
    f = TokenExample([1], [2, 3, 4], topk_ids=np.zeros((3, 2)), topk_logprobs=np.zeros((3, 2)))
    batch = collate([e, f], length=8, rows=3)
    a = batch.arrays
    np.testing.assert_array_equal(a["input_ids"][0], [5, 6, 7, 8, 9, 0, 0, 0])
    np.testing.assert_array_equal(a["attention_mask"][0], [1, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(a["labels"][0], [6, 7, 8, 9] + [IGNORE_INDEX] * 4)
    np.testing.assert_array_equal(a["loss_mask"][0], [0, 0, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(a["topk_ids"][0, 2:4], [[8, 1], [9, 2]])
    np.testing.assert_array_equal(a["loss_mask"][1], [1, 1, 1, 0, 0, 0, 0, 0])
    assert a["attention_mask"][2].sum() == 0  # empty row
    assert (batch.prompt_tokens, batch.label_tokens, batch.padding_tokens) == (4, 5, 24 - 9)
    # labels under the loss mask are exactly the response tokens
    assert sorted(a["labels"][a["loss_mask"] == 1].tolist()) == [2, 3, 4, 8, 9]


def test_make_batches_bounds_shapes_truncates_and_drops():
    rng = np.random.default_rng(0)
    examples = [TokenExample(list(rng.integers(1, 50, rng.integers(1, 40))), list(rng.integers(1, 50, rng.integers(1, 90))))
                for _ in range(50)]
    examples.append(TokenExample(list(range(1, 70)), [1, 2]))  # prompt longer than max_length: dropped
    batches, dropped = make_batches(examples, rows=4, min_length=16, max_length=64)
    assert dropped == [50]
    assert {b.shape for b in batches} <= {(4, 16), (4, 32), (4, 64)}
    assert sorted(i for b in batches for i in b.indices) == list(range(50))
    for b in batches:
        assert b.prompt_tokens + b.label_tokens + b.padding_tokens == b.shape[0] * b.shape[1]
        assert b.arrays["attention_mask"].sum() == b.training_tokens
        assert b.arrays["loss_mask"].sum() == b.label_tokens
    total_prompt = sum(len(e.prompt) for e in examples[:50])
    assert sum(b.prompt_tokens for b in batches) == total_prompt
