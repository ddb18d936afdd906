"""The synthetic capability world: determinism, validity, composition, tokenizer."""

import numpy as np
import pytest

from read_jax.capabilities import TIERS, exact_match
from read_jax.errors import ReadJaxError
from read_jax.worlds import CHARSET, SEP, World, WorldConfig, build_tokenizer, encode_example, in_vocab
from read_jax.worlds.data import ATTRIBUTES
from read_jax.worlds.recipe import examples_to_batch


@pytest.fixture(scope="module")
def world():
    return World(seed=0)


def test_determinism_same_seed_same_world(world):
    other = World(seed=0)
    assert other.data.entities == world.data.entities and other.data.kb == world.data.kb
    assert other.data.en2zl == world.data.en2zl
    for c in world.capabilities:
        assert world.sample(c, 20, seed=5) == other.sample(c, 20, seed=5)
        assert world.sample(c, 20, seed=5, difficulty="hard") == other.sample(c, 20, seed=5, difficulty="hard")
    assert [t.dev for t in world.tasks] == [t.dev for t in other.tasks]
    assert world.mixture(200, seed=3) == other.mixture(200, seed=3)


def test_different_seeds_differ(world):
    assert World(seed=1).data.kb != world.data.kb
    assert world.sample("math", 30, seed=1) != world.sample("math", 30, seed=2)


def test_eight_capabilities_named_as_in_the_paper(world):
    assert world.capabilities == ("general_knowledge", "steerability", "reasoning", "math", "code",
                                  "tool_use", "long_context", "multilingual")


@pytest.mark.parametrize("cap", World(seed=0).capabilities)
def test_capability_examples_valid(world, cap):
    exs = world.sample(cap, 300, seed=11)
    tok = build_tokenizer()
    for e in exs:
        assert e.capability == cap and e.task is None
        assert world.solve(e.prompt) == e.answer  # text alone determines the answer
        assert world.solve(e.prompt, cap) == e.answer
        assert world.score(e.answer, e) == 1.0
        assert world.score(" " + e.answer + " ", e) == 1.0
        assert in_vocab(e.prompt + SEP + e.answer)
        assert SEP not in e.prompt and SEP not in e.answer
        assert len(e.prompt) <= 100 and 1 <= len(e.answer) <= 24
        assert 0.0 <= e.difficulty <= 1.0 and e.tier in TIERS
        te = encode_example(tok, e)
        assert tok.unk_token_id not in [*te.prompt, *te.response]
    # each capability has >= 5 templates and every tier occurs in the natural mix
    assert len(world.library.for_capability(cap)) >= 5
    tiers = {e.tier for e in exs}
    assert tiers == set(TIERS)


def test_tertiles_balanced_on_calibration(world):
    for c in world.capabilities:
        exs = world.sample(c, 600, seed=99)
        share = np.array([sum(e.tier == t for e in exs) for t in TIERS]) / len(exs)
        assert share.min() > 0.12, (c, share)


def test_difficulty_filters(world):
    for c in ("math", "long_context"):
        for t in TIERS:
            assert all(e.tier == t for e in world.sample(c, 20, seed=2, difficulty=t))
        rng_ex = world.sample(c, 20, seed=2, difficulty=(0.5, 1.0))
        assert all(e.difficulty >= 0.5 for e in rng_ex)
    with pytest.raises(ReadJaxError):
        world.sample("math", 1, difficulty="impossible")
    with pytest.raises(ReadJaxError):
        world.sample("nope", 1)


def test_difficulty_tracks_knobs(world):
    hard = [e for e in world.sample("math", 300, seed=4) if e.tier == "hard"]
    easy = [e for e in world.sample("math", 300, seed=4) if e.tier == "easy"]
    mean_len = lambda xs: np.mean([len(e.prompt) for e in xs])
    assert mean_len(hard) > mean_len(easy)
    lc = world.sample("long_context", 300, seed=4)
    pairs = lambda e: e.slot_dict["ctx"].count("=")
    assert np.mean([pairs(e) for e in lc if e.tier == "hard"]) > np.mean([pairs(e) for e in lc if e.tier == "easy"])


def test_exact_match_scorer():
    assert exact_match("ab  c", " ab c ") == 1.0
    assert exact_match("ABC", "abc") == 0.0  # case matters (upper-casing is a skill)
    assert exact_match("12", "12 ") == 1.0 and exact_match("12", "13") == 0.0


def test_solve_rejects_unknown_prompts(world):
    with pytest.raises(ReadJaxError):
        world.solve("completely unrelated text")


def test_tasks_cards_and_splits(world):
    assert len(world.tasks) >= 4
    names = {c for t in world.tasks for c in np.flatnonzero(t.true_r)}
    assert names == set(range(8))  # every capability matters for some task
    for t in world.tasks:
        assert len(t.dev) == t.card.dev_size and len(t.test) == t.card.test_size
        assert np.isclose(t.true_r.sum(), 1.0) and np.count_nonzero(t.true_r) >= 2
        dev, test = {e.prompt for e in t.dev}, {e.prompt for e in t.test}
        ex = {p for p, _ in t.card.exemplars}
        assert len(dev) == len(t.dev) and len(test) == len(t.test)
        assert not dev & test and not ex & (dev | test)
        assert t.card.stated_requirement is None  # hidden from ReAD by default
        assert t.card.description in t.card.text() and t.card.exemplars
        assert t.utility([e.answer for e in t.dev]) == 1.0
        assert t.utility(["?"] * len(t.test), "test") == 0.0
        for e in t.dev + t.test:
            assert e.task == t.name and in_vocab(e.prompt + e.answer)
            assert len(e.prompt) <= 100 and len(e.answer) <= 24


def test_composite_tasks_really_compose(world):
    """An oracle that only calls the component capabilities' solvers solves every task."""
    for t in world.tasks:
        for e in t.dev + t.test[:64]:
            assert world.oracle(e) == e.answer, (t.name, e.prompt)
        # and it is not a constant: answers vary
        assert len({e.answer for e in t.dev}) > len(t.dev) // 4


def test_workload_tasks_mix_capabilities_by_their_true_r(world):
    """A workload's requests are capability examples, drawn in proportion to the task's true r."""
    from read_jax.worlds import WORKLOAD_SPECS

    for spec in WORKLOAD_SPECS:
        t = world.task(spec.name)
        caps = [e.capability for e in t.dev + t.test]
        share = np.array([caps.count(c) for c in world.capabilities]) / len(caps)
        assert set(caps) == {world.capabilities[i] for i in np.flatnonzero(t.true_r)}
        assert np.abs(share - t.true_r).max() < 0.12, (spec.name, share, t.true_r)
        assert all(world.solve(e.prompt, e.capability) == e.answer for e in t.dev)
    # ReAD's generated data keeps clear of workload evaluation prompts
    leak = world.leakage_filter()
    assert all(leak.is_leaked(e.prompt) for e in world.task(WORKLOAD_SPECS[0].name).test)


def test_composites_depend_on_both_components(world):
    """Corrupting either component solver breaks the task answer."""
    d = world.data
    wp = world.task("word_problem").dev[0]
    s = wp.slot_dict
    a = int(d.word_to_en(s["za"]))
    assert str(a) in wp.answer  # the translated operand is shown in the answer
    fx = [e for e in world.task("fact_reason").dev if e.slot_dict["attr"] != "age"][0]
    e_max = fx.answer.split(">")[0]
    assert fx.answer.split(">")[1] == d.kb[e_max][fx.slot_dict["attr"]]


def test_true_requirements_and_card_option():
    w = World(seed=0, config=WorldConfig(cards_state_requirement=True, dev_size=8, test_size=8))
    for t in w.tasks:
        assert np.allclose(t.card.requirement(w.registry), t.true_r)


def test_mixture_is_leak_free_and_covers_everything(world):
    mix = world.mixture(3000, seed=0)
    evals = set(world.eval_prompts(workloads=False))
    assert not any(e.prompt in evals for e in mix)
    sources = {e.source for e in mix}
    assert sources == set(world.capabilities) | set(world.composite_task_names)
    only_caps = world.mixture(200, seed=0, task_share=0.0)
    assert all(e.capability is not None for e in only_caps)


def test_probe_suite(world):
    probes = world.probe_suite(32)
    assert set(probes) == set(world.capabilities)
    for c, exs in probes.items():
        assert len(exs) == 32 and {e.tier for e in exs} == set(TIERS)
    assert world.probe_suite(32) == probes


def test_harder_knobs_change_examples():
    w = World(seed=0, config=WorldConfig(math_max_digits=3, lc_pairs=(6, 8), dev_size=4, test_size=4))
    assert max(len(e.answer) for e in w.sample("math", 200, seed=0)) >= 4
    assert min(e.slot_dict["ctx"].count("=") for e in w.sample("long_context", 50, seed=0)) >= 6


def test_steer_words_from_the_nouns():
    from read_jax.worlds.data import NOUNS

    w = World(seed=0, config=WorldConfig(steer_words="nouns", dev_size=4, test_size=4))
    exs = w.sample("steerability", 100, seed=0)
    assert {e.slot_dict["w"] for e in exs} <= set(NOUNS)
    assert all(w.solve(e.prompt) == e.answer for e in exs)
    with pytest.raises(ReadJaxError, match="steer_words"):
        WorldConfig(steer_words="emoji")


def test_kb_reasoning_and_record_lookup_styles():
    from read_jax.worlds.ops import RECORD_FIELDS

    w = World(seed=0, config=WorldConfig(reasoning_style="kb", lc_style="fields", dev_size=8, test_size=8))
    styles = {t.style for t in w.library.for_capability("reasoning")}
    assert styles == {"kb"}
    reasoning = w.sample("reasoning", 200, seed=0)
    assert all(w.solve(e.prompt) == e.answer for e in reasoning)
    older = [e for e in reasoning if e.template_id.startswith("re.old")]
    assert older and all(
        int(w.data.kb[e.answer]["age"]) == max(int(w.data.kb[e.slot_dict[k]]["age"]) for k in "xy") for e in older)
    same = [e.answer for e in reasoning if e.template_id.startswith("re.same")]
    assert {"yes", "no"} <= set(same)
    records = w.sample("long_context", 100, seed=0)
    for e in records:
        fields = [item.split("=")[0] for item in e.slot_dict["ctx"].split(" ")]
        assert set(fields) <= set(RECORD_FIELDS) and e.slot_dict["k"] in fields
        assert w.solve(e.prompt) == e.answer
    # composite tasks keep their own formats (chains, arbitrary keys) and their oracles still parse them
    for t in w.tasks:
        assert all(w.oracle(e) == e.answer for e in t.dev)
    with pytest.raises(ReadJaxError, match="reasoning_style"):
        WorldConfig(reasoning_style="vibes")


def test_one_letter_keys():
    w = World(seed=0, config=WorldConfig(lc_key_len=1, dev_size=4, test_size=4))
    exs = w.sample("long_context", 100, seed=0)
    assert all(len(e.slot_dict["k"]) == 1 and w.solve(e.prompt) == e.answer for e in exs)
    assert all(w.oracle(e) == e.answer for e in w.task("lookup_translate").dev)
    with pytest.raises(ReadJaxError, match="lc_key_len"):
        WorldConfig(lc_key_len=3)


@pytest.mark.parametrize("preset", ["tiny", "hard"])
def test_presets_valid(preset):
    w = World(seed=0, config=WorldConfig.preset(preset, dev_size=16, test_size=16))
    for c in w.capabilities:
        exs = w.sample(c, 150, seed=1)
        assert all(w.solve(e.prompt) == e.answer and in_vocab(e.prompt + e.answer) for e in exs)
        assert {e.tier for e in exs} == set(TIERS)
    for t in w.tasks:
        assert all(w.oracle(e) == e.answer for e in t.dev)
    with pytest.raises(ReadJaxError):
        WorldConfig.preset("nope")


def test_config_validation():
    with pytest.raises(ReadJaxError):
        WorldConfig(n_entities=100)
    with pytest.raises(ReadJaxError):
        WorldConfig(lc_pairs=(5, 3))
    with pytest.raises(ReadJaxError):
        WorldConfig(reasoning_items=(3, 30))


def test_kb_shape(world):
    d = world.data
    assert len(d.entities) == world.config.n_entities
    assert len({e[0] for e in d.entities}) == len(d.entities)  # distinct initials
    for e in d.entities:
        assert set(d.kb[e]) == set(ATTRIBUTES)
    words = list(d.en2zl.values())
    assert len(set(words)) == len(words)
    assert d.to_en(d.to_zl("sun 47 plus tree")) == "sun 47 plus tree"


# ---------------------------------------------------------------- tokenizer
def test_tokenizer_round_trip_and_reload(tmp_path, world):
    from transformers import AutoTokenizer

    tok = build_tokenizer()
    assert len(tok) <= 128 and tok.pad_token_id == 0 and tok.bos_token_id == 1 and tok.eos_token_id == 2
    text = CHARSET
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and tok.decode(ids) == text
    tok.save_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    exs = [e for c in world.capabilities for e in world.sample(c, 5, seed=0)] + list(world.tasks[0].dev[:5])
    for e in exs:
        full = e.prompt + SEP + e.answer
        a = tok(full)["input_ids"]
        assert a == tok2(full)["input_ids"] and a[0] == tok.bos_token_id
        assert tok2.decode(a, skip_special_tokens=True) == full
    assert tok2.eos_token == "<eos>" and tok2.pad_token == "<pad>"


def test_encode_example_and_recipe_batch(world):
    tok = build_tokenizer()
    e = world.sample("math", 1, seed=0)[0]
    te = encode_example(tok, e)
    assert te.prompt[0] == tok.bos_token_id and te.response[-1] == tok.eos_token_id
    assert len(te.prompt) == len(e.prompt) + len(SEP) + 1 and len(te.response) == len(e.answer) + 1
    assert tok.decode(te.response[:-1]) == e.answer
    exs = world.sample("code", 7, seed=0)
    b = examples_to_batch(tok, exs, 128)
    assert b["input_ids"].shape == b["loss_mask"].shape == b["attention_mask"].shape == (7, 128)
    assert b["loss_mask"].sum() == sum(len(x.answer) + 1 for x in exs)
    # the loss positions predict exactly the answers and their eos
    for row, x in enumerate(exs):
        m = b["loss_mask"][row].astype(bool)
        assert tok.decode(b["labels"][row][m]) == x.answer + tok.eos_token
    with pytest.raises(ReadJaxError, match="seq_len"):
        examples_to_batch(tok, exs, 4)
