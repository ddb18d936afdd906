"""Capability machinery: registry, cards, templates, difficulty, curriculum, share cap, leakage, sampler."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from read_jax.capabilities import (
    TIERS,
    CapabilityRegistry,
    DifficultyScale,
    Example,
    LeakageFilter,
    ListPromptSource,
    SamplerConfig,
    ShareCapWindow,
    Task,
    TaskCard,
    Template,
    TemplateLibrary,
    curriculum_mix,
    fill_slots,
    instantiate,
    load_jsonl,
    normalise_prompt,
    prompt_hash,
    sample_tier,
)
from read_jax.capabilities.templates import write_jsonl
from read_jax.errors import ReadJaxError
from read_jax.worlds import World


@pytest.fixture(scope="module")
def world():
    return World(seed=0)


# ---------------------------------------------------------------- registry / cards
def test_registry():
    r = CapabilityRegistry()
    assert len(r) == 8 and r.index("math") == 3
    v = r.vector({"math": 2.0, "code": 2.0}, normalise=True)
    assert v.sum() == 1.0 and v[r.index("code")] == 0.5
    assert r.as_dict(v)["math"] == 0.5
    assert np.allclose(r.check_simplex(v), v)
    for bad in ((), ("a", "a"), ("Bad name",)):
        with pytest.raises(ReadJaxError):
            CapabilityRegistry(bad)
    with pytest.raises(ReadJaxError):
        r.vector({"nope": 1.0})
    with pytest.raises(ReadJaxError):
        r.check_simplex(np.ones(8))
    assert len(CapabilityRegistry(("a", "b", "c"))) == 3  # any list works


def _card(**kw):
    base = dict(name="t", description="d", input_format="i", output_format="o", exemplars=(("p", "a"),),
                dev_size=2, test_size=2, dev_seed=1, test_seed=2)
    base.update(kw)
    return TaskCard(**base)


def test_task_card_validation_and_requirement():
    reg = CapabilityRegistry()
    c = _card(stated_requirement={"math": 1.0, "code": 3.0})
    assert np.allclose(c.requirement(reg), reg.vector({"math": 0.25, "code": 0.75}))
    assert _card().requirement(reg) is None
    assert "description: d" in c.text() and "example: p -> a" in c.text()
    for bad in (dict(name="Bad"), dict(description=" "), dict(dev_size=0), dict(test_seed=1),
                dict(eval_type="bleu"), dict(stated_requirement={"math": -1.0})):
        with pytest.raises(ReadJaxError):
            _card(**bad)
    with pytest.raises(Exception):
        c.name = "x"  # frozen
    e = Example("p", "a", task="t")
    task = Task(card=_card(), dev=(e, e), test=(e, e))
    assert task.utility(["a", "b"]) == 0.5
    with pytest.raises(ReadJaxError):
        Task(card=_card(), dev=(e,), test=(e, e))


# ---------------------------------------------------------------- templates
def test_template_fill_parse_and_json(tmp_path):
    t = Template.from_dict({"id": "x.0", "capability": "math", "op": "add", "scaffold": "{a} plus {b} {{ok}}?",
                            "slots": {"a": {"type": "int", "pattern": "\\d+"}, "b": "int"}, "fixed": {"k": "v"}})
    assert t.fill({"a": "3", "b": "40"}) == "3 plus 40 {ok}?"
    assert t.parse("3 plus 40 {ok}?") == {"a": "3", "b": "40", "k": "v"}
    assert t.parse("3 minus 40 {ok}?") is None
    path = tmp_path / "t.jsonl"
    write_jsonl([t], path)
    assert load_jsonl(path) == [t]
    for bad in (
        {"id": "a", "capability": "m", "scaffold": "{a}", "slots": {}},  # undeclared slot
        {"id": "a", "capability": "m", "scaffold": "x", "slots": {"a": "int"}},  # unused slot
        {"id": "a", "capability": "m", "scaffold": "{a!r}", "slots": {"a": "int"}},
        {"id": "a", "capability": "m", "scaffold": "{a}", "slots": {"a": "int"}, "what": 1},
        {"id": "a", "capability": "m", "scaffold": "{a}", "slots": {"a": "int"}, "fixed": {"a": "1"}},
    ):
        with pytest.raises(ReadJaxError):
            Template.from_dict(bad)
    path.write_text(json.dumps(t.to_dict()) + "\n" + json.dumps(t.to_dict()) + "\n")
    with pytest.raises(ReadJaxError):
        TemplateLibrary.load(path)  # duplicate ids
    with pytest.raises(ReadJaxError):
        TemplateLibrary([t], capabilities=["code"])


def _real_templates():
    """The real-model path: free-text slots filled from lists."""
    rows = []
    for cap in ("general_knowledge", "math"):
        for i in range(5):
            rows.append(Template.from_dict({
                "id": f"{cap}.{i}", "capability": cap, "output_format": "one line",
                "scaffold": f"Q{i}: tell me about {{topic}} in {{style}} style.",
                "slots": {"topic": ["rivers", "volcanoes", "prime numbers", "the moon"],
                          "style": {"type": "choice", "values": ["a formal", "a casual", "a very terse"]}},
            }))
    return TemplateLibrary(rows)


def test_slot_filling_deterministic_world_and_lists(world):
    t = world.library["lc.0"]
    a = world.instantiate(t, 123)
    assert a == world.instantiate(t, 123) and a != world.instantiate(t, 124)
    lib = _real_templates()
    t = lib["math.2"]
    assert fill_slots(t, 7) == fill_slots(t, 7)
    prompt, slots = instantiate(t, np.random.default_rng(7))
    assert prompt == t.fill(slots) and t.parse(prompt) == slots
    assert len({instantiate(t, s)[0] for s in range(40)}) > 4
    with pytest.raises(ReadJaxError):
        fill_slots(world.library["lc.0"], 0)  # typed world slots need the world's generators


def test_world_templates_parse_unambiguously(world):
    for c in world.capabilities:
        for e in world.sample(c, 60, seed=3):
            parses = world.library.parse(e.prompt)
            assert [t.id for t, _ in parses] == [e.template_id]
            assert parses[0][1] == e.slot_dict


# ---------------------------------------------------------------- difficulty / curriculum
def test_difficulty_scale_tertiles():
    raw = np.random.default_rng(0).gamma(2.0, size=900)
    s = DifficultyScale.fit(raw)
    d = np.array([s.normalise(x) for x in raw])
    assert d.min() == 0.0 and d.max() == 1.0
    share = np.array([np.mean([s.tier(x) == t for x in d]) for t in TIERS])
    assert np.allclose(share, 1 / 3, atol=0.02)
    assert s.normalise(raw.max() + 10) == 1.0 and s.normalise(raw.min() - 10) == 0.0
    with pytest.raises(ReadJaxError):
        DifficultyScale.fit([1.0])


def test_curriculum_table():
    assert curriculum_mix(0.0) == curriculum_mix(0.3) == (0.10, 0.80, 0.10)
    assert curriculum_mix(0.31) == curriculum_mix(0.7) == (0.10, 0.50, 0.40)
    assert curriculum_mix(0.71) == curriculum_mix(1.0) == (0.05, 0.20, 0.75)
    with pytest.raises(ReadJaxError):
        curriculum_mix(-0.1)


@pytest.mark.parametrize("progress", [0.1, 0.5, 0.9])
def test_curriculum_proportions_empirical(world, progress):
    rng = np.random.default_rng(0)
    n = 6000
    tiers = [sample_tier(progress, rng) for _ in range(n)]
    emp = np.array([tiers.count(t) for t in TIERS]) / n
    assert np.allclose(emp, curriculum_mix(progress), atol=0.02)
    # end to end through the sampler: the delivered tiers follow the curriculum
    s = world.prompt_sampler(seed=1)
    exs = s.sample(np.full(8, 1 / 8), 1200, progress=progress)
    got = np.array([sum(e.tier == t for e in exs) for t in TIERS]) / len(exs)
    assert np.allclose(got, curriculum_mix(progress), atol=0.05), got
    assert s.stats["tier_missed"] == 0


# ---------------------------------------------------------------- share cap
@settings(max_examples=25, deadline=None)
@given(seq=st.lists(st.integers(0, 6), min_size=1, max_size=300), window=st.integers(4, 40),
       share=st.floats(0.2, 0.6))
def test_share_cap_window_never_exceeded(seq, window, share):
    cap = ShareCapWindow(window, share)
    pushed = []
    for i in seq:
        if cap.admissible(i):
            cap.push(i)
            pushed.append(i)
    for start in range(max(1, len(pushed) - window + 1)):
        win = pushed[start:start + window]
        assert max(win.count(i) for i in set(win)) <= cap.cap


def _windows_ok(ids, window=128, max_share=0.25):
    cap = int(np.floor(max_share * window))
    for start in range(max(1, len(ids) - window + 1)):
        win = ids[start:start + window]
        if max(win.count(i) for i in set(win)) > cap:
            return False
    return True


def test_sampler_share_cap_one_hot_and_mixed(world):
    s = world.prompt_sampler(seed=0)
    one_hot = np.eye(8)[world.capabilities.index("general_knowledge")]
    ids = [e.template_id for e in s.sample(one_hot, 700, progress=0.9)]
    assert _windows_ok(ids) and len(set(ids)) >= 4
    ids += [e.template_id for e in s.sample(np.full(8, 1 / 8), 300, progress=0.2)]
    assert _windows_ok(ids)
    # a library whose templates cannot serve a one-hot allocation under the cap is refused
    lib = TemplateLibrary([world.library["ma.add.0"], world.library["ma.add.1"]])
    src = ListPromptSource.__new__(ListPromptSource)
    src.library, src.capabilities = lib, ("math",)
    from read_jax.capabilities import PromptSampler
    with pytest.raises(ReadJaxError):
        PromptSampler(src, config=SamplerConfig())


# ---------------------------------------------------------------- leakage
def test_leakage_filter_normalisation():
    f = LeakageFilter(["What is  12+7?"])
    assert f.is_leaked("what is 12+7?") and f.is_leaked("  WHAT IS\t12+7? ") and f("What is 12+7?")
    assert not f.is_leaked("What is 12+8?")
    assert normalise_prompt(" A  b\nC ") == "a b c"
    assert prompt_hash("A b") == prompt_hash("a   B") != prompt_hash("ab")


def test_sampler_rejects_eval_prompts(world):
    probe = world.sample("math", 1, seed=0)[0]
    # forbid the whole small prompt space of one math template except a few prompts
    s = world.prompt_sampler(seed=0, extra_eval_prompts=[probe.prompt.upper() + "  "])
    exs = s.sample({"math": 1.0}, 400)
    assert all(normalise_prompt(e.prompt) != normalise_prompt(probe.prompt) for e in exs)
    evals = {normalise_prompt(p) for p in world.eval_prompts()}
    assert not any(normalise_prompt(e.prompt) in evals for e in exs)
    # the filter really fires: ban a prompt that the unfiltered stream produces
    free = world.prompt_sampler(seed=5)
    first = free.sample({"math": 1.0}, 50)
    banned = world.prompt_sampler(seed=5, extra_eval_prompts=[first[0].prompt])
    again = banned.sample({"math": 1.0}, 50)
    assert first[0].prompt not in {e.prompt for e in again}
    assert banned.stats["leak_rejected"] >= 1


# ---------------------------------------------------------------- sampler determinism / resume / budget
def test_sampler_deterministic_and_resumable(world):
    w = {"math": 0.5, "code": 0.25, "long_context": 0.25}
    a = world.prompt_sampler(seed=3)
    full = a.sample(w, 60, progress=0.4)
    b = world.prompt_sampler(seed=3)
    first = b.sample(w, 25, progress=0.4)
    state = json.loads(json.dumps(b.state_dict()))  # plain ints / lists
    c = world.prompt_sampler(seed=999)
    c.load_state_dict(state)
    assert first + c.sample(w, 35, progress=0.4) == full
    assert world.prompt_sampler(seed=3).sample(w, 60, progress=0.4) == full
    assert world.prompt_sampler(seed=4).sample(w, 60, progress=0.4) != full
    caps = {e.capability for e in full}
    assert caps <= set(w) and len(caps) == 3


def test_sampler_token_budget_and_validation(world):
    s = world.prompt_sampler(seed=0)
    exs = s.sample(np.full(8, 1 / 8), token_budget=500)
    used = sum(len(e.prompt) for e in exs)
    assert used <= 500 and used > 500 - 100
    nxt = s.sample(np.full(8, 1 / 8), 1)[0]
    ref = world.prompt_sampler(seed=0)
    assert ref.sample(np.full(8, 1 / 8), len(exs) + 1)[-1] == nxt  # the unfitting prompt was not consumed
    for bad in ([1.0] * 3, [-1.0] + [1.0] * 7, [0.0] * 8, {"nope": 1.0}):
        with pytest.raises(ReadJaxError):
            s.sample(bad, 1)
    with pytest.raises(ReadJaxError):
        s.sample(np.full(8, 1 / 8))


def test_list_prompt_source_real_model_path():
    lib = _real_templates()
    src = ListPromptSource(lib, seed=0)
    from read_jax.capabilities import PromptSampler
    s = PromptSampler(src, seed=0)
    exs = s.sample({"math": 1.0}, 200, progress=0.95)
    assert all(e.capability == "math" and e.answer == "" and e.tier in TIERS for e in exs)
    assert _windows_ok([e.template_id for e in exs])
    hard = sum(e.tier == "hard" for e in exs) / len(exs)
    assert hard > 0.5
