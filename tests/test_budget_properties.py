"""Property tests (hypothesis) of the token budget as the ReAD loop drives it.

Extends tests/test_distill_budget.py (which checks raw charge_* sequences) with: the loop's own
rules (generation sized by `generation_allowance`, examples kept by `fit_count` and the first one
that does not fit cut to the tokens left, then `make_batches` + `charge_batch`), the consistency
of every derived quantity, a save / restore (`state_dict` -> JSON -> `from_state_dict`) at any
point giving the same final ledger, and limits past 2**53.
"""

import json
import math
from types import SimpleNamespace

import numpy as np
from hypothesis import event, given, settings, strategies as st

from read_jax.distill.batching import TokenExample, make_batches
from read_jax.distill.budget import BudgetExceeded, TokenBudget

SETTINGS = settings(max_examples=300, deadline=None)

limits = st.one_of(st.integers(0, 300), st.integers(0, 4000), st.integers(2**52, 2**64))
shares = st.one_of(st.sampled_from([0.4, 0.0, 1.0, 0.3]), st.floats(0.0, 1.0))
example_lists = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 60)), max_size=8)
ops = st.lists(st.one_of(
    # the loop's generation call: n prompts sized by the allowance, each answer <= max_new_tokens
    st.tuples(st.just("gen_loop"), st.tuples(st.integers(1, 64), st.integers(1, 32), st.lists(st.floats(0, 1), max_size=64))),
    # a raw charge, possibly more than fits (must be refused and change nothing)
    st.tuples(st.just("gen_raw"), st.integers(0, 3000)),
    # fit_count + the loop's cut rule + make_batches + charge_batch
    st.tuples(st.just("train"), st.tuples(example_lists, st.sampled_from([8, 16, 32, 128]), st.integers(1, 4))),
    # a raw training charge, possibly more than fits
    st.tuples(st.just("train_raw"), st.tuples(st.integers(0, 500), st.integers(0, 500))),
    st.tuples(st.just("save"), st.none()),
    # the loop's last interval: training may spend what the teacher pool leaves
    st.tuples(st.just("pool"), st.none()),
), min_size=4, max_size=30)


def loop_examples(budget: TokenBudget, examples: list[TokenExample]) -> list[TokenExample]:
    """The examples `ReadRun.step` trains on (read_jax/loop/collect.py, "the first example that does not fit
    is cut to the tokens left"): the leading ones `fit_count` keeps, then the next one with its
    labels cut to the room left (dropped if no label token fits)."""
    keep = budget.fit_count((len(e.prompt), len(e.response)) for e in examples)
    if keep < len(examples):
        rest = examples[keep]
        room = (budget.student_limit - budget.student_used
                - sum(budget.training_cost(len(e.prompt), len(e.response)) for e in examples[:keep]))
        labels = room - (len(rest.prompt) if budget.accounting == "artifact" else 0)
        cut = rest.with_label_limit(labels) if labels > 0 else None
        examples = examples[:keep] + ([cut] if cut is not None else [])
    return examples


def train_like_the_loop(budget: TokenBudget, pairs, max_length: int, rows: int) -> tuple[int, int]:
    """Keep / cut / batch / charge as the loop does; returns (training cost charged, room before)."""
    room = budget.student_limit - budget.student_used
    before = budget.student_used
    examples = loop_examples(budget, [TokenExample([1] * p, [2] * l) for p, l in pairs])
    batches, _ = make_batches(examples, rows, min_length=8, max_length=max_length)
    for batch in batches:
        budget.charge_batch(batch)  # never raises: what fit_count + the cut allow always fits
    return budget.student_used - before, room


def assert_consistent(b: TokenBudget) -> None:
    assert 0 <= b.teacher_limit <= b.limit
    assert 0 <= b.teacher_used <= b.teacher_limit
    assert 0 <= b.student_used <= b.student_limit
    assert b.used == b.teacher_used + b.student_used <= b.limit
    if b.pooled:  # training may take whatever generation has not: the room left is one number
        assert b.student_limit == b.limit - b.teacher_used and b.remaining == b.student_limit - b.student_used
    else:
        assert b.teacher_limit + b.student_limit == b.limit
        assert b.remaining == (b.teacher_limit - b.teacher_used) + (b.student_limit - b.student_used)
    assert b.remaining == b.limit - b.used >= 0
    assert 0.0 <= b.progress <= 1.0
    assert b.exhausted == (b.student_used == b.student_limit)
    if b.accounting == "artifact":
        left = b.teacher_limit - b.teacher_used
        assert b.generation_allowance() == (min(left, b.remaining) if b.pooled else left)
        assert b.teacher_used == b.generated_tokens
        assert b.student_used == b.prompt_tokens + b.label_tokens
    else:
        assert b.generation_allowance() is None and b.teacher_limit == 0 and b.teacher_used == 0
        assert b.student_used == b.label_tokens


def apply(b: TokenBudget, kind: str, arg, round_trip: bool) -> tuple[TokenBudget, object]:
    """One operation; returns the (possibly restored) budget and an outcome to compare runs by."""
    if kind == "pool":
        b.pool()
        return b, None
    if kind == "save":
        if round_trip:  # a checkpoint stores the state dict as JSON (`ReadRun._meta`)
            b = TokenBudget.from_state_dict(json.loads(json.dumps(b.state_dict())))
        return b, None
    if kind == "gen_loop":
        prompts_per_call, max_new, fractions = arg
        allowance = b.generation_allowance()
        n = prompts_per_call if allowance is None else min(prompts_per_call, allowance // max_new)
        generated = sum(int(f * max_new) for f in fractions[:n])  # each answer <= max_new_tokens
        b.charge_generation(generated)  # never raises: the worst case fitted
        return b, generated
    if kind == "gen_raw":
        before, allowance = b.state_dict(), b.generation_allowance()
        try:
            b.charge_generation(arg)
        except BudgetExceeded:
            assert allowance is not None and arg > allowance and b.state_dict() == before
            return b, "refused"
        assert allowance is None or arg <= allowance
        return b, arg
    if kind == "train":
        pairs, max_length, rows = arg
        charged, room = train_like_the_loop(b, pairs, max_length, rows)
        assert 0 <= charged <= room
        return b, charged
    p, l = arg
    before, room = b.state_dict(), b.student_limit - b.student_used
    try:
        b.charge_batch(SimpleNamespace(prompt_tokens=p, label_tokens=l))
    except BudgetExceeded:
        assert b.training_cost(p, l) > room and b.state_dict() == before
        return b, "refused"
    return b, b.training_cost(p, l)


@SETTINGS
@given(limit=limits, accounting=st.sampled_from(["artifact", "paper"]), share=shares, ops=ops)
def test_ledger_stays_within_its_pools_and_survives_save_restore_anywhere(limit, accounting, share, ops):
    plain = TokenBudget(limit, accounting, teacher_share=share)
    saved = TokenBudget(limit, accounting, teacher_share=share)
    assert_consistent(plain)
    outcomes_plain, outcomes_saved = [], []
    for kind, arg in ops:
        plain, out_p = apply(plain, kind, arg, round_trip=False)
        saved, out_s = apply(saved, kind, arg, round_trip=True)
        outcomes_plain.append(out_p)
        outcomes_saved.append(out_s)
        assert_consistent(plain)
        assert_consistent(saved)
    event(f"student pool full: {plain.exhausted}; a charge refused: {'refused' in outcomes_plain}; "
          f"saved: {('save', None) in ops}")
    # the save / restore points change nothing: same decisions, same final ledger, no token lost
    assert outcomes_saved == outcomes_plain
    assert saved.state_dict() == plain.state_dict() and saved == plain
    assert json.loads(json.dumps(saved.state_dict())) == saved.state_dict()


@SETTINGS
@given(limit=st.integers(0, 3000), accounting=st.sampled_from(["artifact", "paper"]), share=shares,
       used=st.floats(0, 1), pairs=example_lists, max_length=st.sampled_from([8, 16, 64, 4096]),
       rows=st.integers(1, 4))
def test_the_loops_cut_rule_never_exceeds_the_student_pool(limit, accounting, share, used, pairs, max_length, rows):
    b = TokenBudget(limit, accounting, teacher_share=share)
    # start part-way through the student pool (prompt tokens are charged only under "artifact")
    spent = int(used * b.student_limit)
    b.charge_training(0, spent)
    kept = loop_examples(b, [TokenExample([1] * p, [2] * l) for p, l in pairs])
    cost = sum(b.training_cost(len(e.prompt), len(e.response)) for e in kept)
    room = b.student_limit - b.student_used
    assert cost <= room
    # the cut uses the room exactly when an example had to be cut and a label token still fitted
    n_fit = b.fit_count(pairs)
    event(f"cut: {len(kept) == n_fit + 1}; dropped: {len(kept) < len(pairs)}")
    if n_fit < len(pairs) and len(kept) == n_fit + 1:
        assert cost == room
    charged, _ = train_like_the_loop(b, pairs, max_length, rows)
    assert charged <= room and b.student_used <= b.student_limit
    if max_length == 4096:  # nothing truncated by make_batches: every kept token is charged
        assert charged == cost


@settings(max_examples=300, deadline=None)
@given(limit=st.one_of(st.integers(0, 10**6), st.integers(2**50, 2**70)), share=shares)
def test_the_two_pools_partition_the_limit_exactly(limit, share):
    """Filling both pools spends exactly the limit, never more, even past 2**53 (float share)."""
    b = TokenBudget(limit, "artifact", teacher_share=share)
    assert b.teacher_limit == min(limit, math.floor(limit * share)) and b.student_limit >= 0
    b.charge_generation(b.generation_allowance())
    b.charge_training(0, b.max_label_tokens(0))
    assert b.used == b.limit and b.remaining == 0 and b.exhausted
    assert TokenBudget.from_state_dict(b.state_dict()) == b


def test_state_dict_is_plain_json_whatever_the_input_types():
    b = TokenBudget(np.int64(1000), np.str_("artifact"), teacher_share=np.float32(0.4))
    b.charge_generation(np.int64(10))
    state = b.state_dict()
    assert TokenBudget.from_state_dict(json.loads(json.dumps(state))) == b
    assert {type(v) for v in state.values()} <= {int, float, str, bool}
