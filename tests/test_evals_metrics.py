"""Metrics and answer extraction on hand-made items, adversarial ones included.

Code execution (pass_at_1 end to end) is tested in test_evals_sandbox.py; here only the
program it builds.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from read_jax.capabilities.registry import Example, TaskCard
from read_jax.errors import ReadJaxError
from read_jax.evals.extract import (
    OUTPUT_FORMATS,
    check_format,
    extract_choice_letter,
    extract_code,
    extract_json,
    extract_number,
    normalise_number,
)
from read_jax.evals.metrics import ALIASES, INSTRUCTION_CHECKS, METRICS, build_program, get_metric


def ex(answer: str = "", choices: tuple[str, ...] = (), **info) -> Example:
    return Example(prompt="q", answer=answer, id="item-1", choices=choices, info=info)


def score(name: str, completion: str, example: Example) -> float:
    return get_metric(name).score(completion, example)


# =========================================================================== numbers
@pytest.mark.parametrize(
    "text,expected",
    [
        ("#### 1,234", "1234"),
        ("Step 1: 5 + 7 = 12.\n#### 12\nCheck: 3 times", "12"),  # #### beats the last number
        ("So the answer is 17 apples, from 3 baskets.", "17"),  # stated answer beats the last number
        ("Answer: **-42**", "-42"),
        ("The answer is $1,234.50.", "1234.5"),
        ("It costs \u22127 dollars", "-7"),  # Unicode minus
        ("x = 3.0", "3"),
        ("I had 5 apples, ate 2, and have 3 left.", "3"),  # last number, sentence full stop dropped
        ("Final: \\boxed{3/4}", "0.75"),
        ("one third is 1/3", "1/3"),
        ("version v2 of model gpt4", None),  # digits glued to words are not numbers
        ("", None),
        ("no digits here", None),
        ("1,2345 items", "2345"),  # a malformed thousands group is not one number
    ],
)
def test_extract_number(text, expected):
    assert extract_number(text) == expected


@given(st.integers(min_value=-10**12, max_value=10**12))
@settings(max_examples=60, deadline=None)
def test_extract_number_roundtrips_integers_in_any_surface_form(n):
    for surface in (f"{n}", f"{n:,}", f"{n}.0", f"{n}.000"):
        assert extract_number(f"Reasoning... so the total is {surface}.") == str(n)
        assert extract_number(f"#### {surface}") == str(n)


@given(st.fractions(min_value=-1000, max_value=1000, max_denominator=64))
@settings(max_examples=60, deadline=None)
def test_normalise_number_equal_values_equal_strings(q):
    a = normalise_number(f"{q.numerator}/{q.denominator}")
    assert a is not None and normalise_number(a) == a  # idempotent
    if q.denominator & (q.denominator - 1) == 0:  # a power of two: also an exact decimal
        assert normalise_number(repr(q.numerator / q.denominator)) == a


def test_normalise_number_rejects_non_numbers():
    for s in ("", "-", "1/0", "nan", "inf", "abc", "1.2.3"):
        assert normalise_number(s) is None


def test_numeric_exact_reads_a_gsm8k_gold_solution():
    gold = ex("Natalia sold 48/2 = 24 clips in May.\nAltogether 48+24 = 72 clips.\n#### 72")
    assert score("numeric_exact", "She sold 72 clips in total.", gold) == 1.0
    assert score("gsm8k_exact", "The answer is 72.0", gold) == 1.0
    assert score("numeric_exact", "48 + 24 = 720", gold) == 0.0
    assert score("numeric_exact", "", gold) == 0.0
    assert score("numeric_exact", "The answer is 24. Wait: 48 + 24 = 72", ex("#### 24")) == 1.0


def test_numeric_exact_negative_and_thousands():
    assert score("numeric_exact", "It dropped to -5 degrees", ex("-5")) == 1.0
    assert score("numeric_exact", "It dropped 5 degrees", ex("-5")) == 0.0
    assert score("numeric_exact", "#### 1,234", ex("1234")) == 1.0


def test_numeric_exact_gold_without_a_number_is_a_data_error():
    with pytest.raises(ReadJaxError, match="item-1"):
        score("numeric_exact", "5", ex("five"))


# =========================================================================== code and JSON
def test_extract_code_prefers_the_first_python_block():
    text = "Run:\n```bash\nrm -rf /\n```\nthen\n```python\nx = 1\n```\n```python\ny = 2\n```"
    assert extract_code(text) == "x = 1\n"
    assert extract_code("```py\ndef f():\n    return 1\n```") == "def f():\n    return 1\n"
    assert extract_code("```\nz = 3\n```") == "z = 3\n"
    assert extract_code("```python\ndef f():\n    return 1") == "def f():\n    return 1"  # cut at the token limit
    assert extract_code("    return x + 1\n") == "    return x + 1\n"  # no fence: the text itself


def test_extract_json():
    assert extract_json('```json\n{"a": 1}\n```') == {"a": 1}
    tricky = {"a": {"b": "} tricky {"}, "c": [1, 2]}
    assert extract_json(f"Sure: {json.dumps(tricky)} hope that helps") == tricky
    assert extract_json('see [1], then {"name": "f"}') == [1]
    assert extract_json('see [1], then {"name": "f"}', kind=dict) == {"name": "f"}
    assert extract_json("{not json} [also, not]") is None
    assert extract_json("") is None
    for deep in ("[" * 50_000, '{"a":' * 50_000):  # adversarial nesting: bounded, no crash
        assert extract_json(deep) is None and not check_format("json", deep) and not check_format("python", deep)


def test_deeply_nested_completions_score_zero_instead_of_crashing():
    call = ex('{"name": "f", "arguments": {}}', instructions=[{"type": "json_object"}])
    assert score("tool_call", "f(x=" + "[" * 20_000 + "]" * 20_000 + ")", call) == 0.0
    assert score("instruction_following", "[" * 50_000, call) == 0.0


def test_build_program_completion_vs_whole_function():
    info = {"code_prompt": "from typing import List\n\ndef f(xs: List[int]) -> int:\n    \"\"\"Sum.\nimport this\n\"\"\"\n",
            "test": "def check(candidate):\n    assert candidate([1, 2]) == 3\n", "entry_point": "f"}
    body = build_program("    return sum(xs)\n", ex(**info))
    assert body.startswith(info["code_prompt"] + "    return sum(xs)") and body.rstrip().endswith("check(f)")
    whole = build_program("```python\ndef f(xs):\n    return sum(xs)\n```", ex(**info))
    assert whole.startswith("from typing import List\ndef f(xs):") and "Sum." not in whole
    assert "import this" not in whole  # a docstring line that looks like an import is not one
    assert "def check(candidate)" in whole and whole.rstrip().endswith("check(f)")
    # a helper named like the entry point is not a definition of it
    assert build_program("    return f_helper(xs)\n", ex(**info)).startswith(info["code_prompt"])


def test_pass_at_1_needs_its_fields():
    with pytest.raises(ReadJaxError, match="entry_point"):
        score("pass_at_1", "    return 1\n", ex(test="", code_prompt=""))


# =========================================================================== letters and choices
@pytest.mark.parametrize(
    "text,n,expected",
    [
        ("The answer is (B).", 4, 1),
        ("Answer: C", 4, 2),
        ("answer: **D**", 4, 3),
        ("A", 4, 0),
        ("(B)", 4, 1),
        ("B. Paris is the capital", 4, 1),
        ("The answer is (B). Wait, no: the answer is (D).", 4, 3),
        ("Answer: E", 4, None),  # past the last option
        ("Absolutely, Bob Cares Deeply.", 4, None),  # capitals inside words
        ("I think A is a good guess", 4, None),  # the article "A", no answer position
        ("the answer is a bit unclear", 4, None),  # lower-case letters are words
        ("Answer: Paris", 4, None),
        ("", 4, None),
        ("A", 0, None),
    ],
)
def test_extract_choice_letter(text, n, expected):
    assert extract_choice_letter(text, n) == expected


def test_choice_letter_metric():
    item = ex("Paris", choices=("London", "Paris", "Rome"), gold=1)
    assert score("choice_letter", "The answer is (B)", item) == 1.0
    assert score("choice_letter", "The answer is (A)", item) == 0.0
    assert score("choice_letter", "", item) == 0.0
    with pytest.raises(ReadJaxError, match="gold"):
        score("choice_letter", "B", ex("x", choices=("a", "b"), gold=5))


def test_mc_loglik_argmax_and_length_normalisation_disagree_when_they_should():
    item = ex("long", choices=("short", "long"), gold=1)
    logliks, n_tokens = [-6.0, -10.0], [2, 10]  # raw favours "short", per token favours "long"
    assert get_metric("mc_loglik").score_choices(logliks, n_tokens, item) == 0.0
    assert get_metric("mc_loglik_norm").score_choices(logliks, n_tokens, item) == 1.0
    assert get_metric("logprob") is get_metric("mc_loglik_norm")


def test_mc_loglik_ties_go_to_the_lowest_index_and_nan_never_wins():
    m = get_metric("mc_loglik")
    assert m.score_choices([-1.0, -1.0, -2.0], [1, 1, 1], ex(choices=("a", "b", "c"), gold=0)) == 1.0
    assert m.score_choices([-1.0, -1.0, -2.0], [1, 1, 1], ex(choices=("a", "b", "c"), gold=1)) == 0.0
    assert m.score_choices([math.nan, -3.0], [1, 1], ex(choices=("a", "b"), gold=1)) == 1.0


def test_mc_loglik_rejects_malformed_inputs():
    m = get_metric("mc_loglik_norm")
    with pytest.raises(ReadJaxError, match="2 choices but 3"):
        m.score_choices([-1.0, -2.0, -3.0], [1, 1, 1], ex(choices=("a", "b"), gold=0))
    with pytest.raises(ReadJaxError, match="0 tokens"):
        m.score_choices([-1.0, -2.0], [0, 1], ex(choices=("a", "b"), gold=0))
    with pytest.raises(ReadJaxError, match="gold"):
        m.score_choices([-1.0, -2.0], [1, 1], ex(choices=("a", "b")))
    with pytest.raises(ReadJaxError, match="scores choices"):
        m.score("A", ex(choices=("a", "b"), gold=0))
    with pytest.raises(ReadJaxError, match="scores a completion"):
        get_metric("choice_letter").score_choices([0.0], [1], ex(choices=("a",), gold=0))


# =========================================================================== instructions
# (instruction, a response that obeys it, one that does not)
INSTRUCTION_CASES = [
    ({"type": "min_words", "n": 3}, "one two three", "one two"),
    ({"type": "max_words", "n": 3}, "one two three", "one two three four"),
    ({"type": "exact_words", "n": 2}, "don't panic", "do not panic"),
    ({"type": "json_object", "keys": ["a"]}, '```json\n{"a": 1, "extra": 2}\n```', '{"b": 1}'),
    ({"type": "json_object"}, '{"a": 1}', "[1, 2]"),
    ({"type": "required_words", "words": ["cat", "red hat"]}, "A Cat in a red hat", "A category of red hats"),
    ({"type": "forbidden_words", "words": ["cat"]}, "concatenate the category", "the CAT sat"),
    ({"type": "lowercase"}, "all quiet here", "Not quiet"),
    ({"type": "uppercase"}, "LOUD NOISES!", "LOUD noises"),
    ({"type": "num_bullets", "n": 2}, "Intro\n* one\n- two\n", "* one\n* two\n* three"),
    ({"type": "starts_with", "text": "Dear Sir"}, "  dear sir, hello", "Hello, dear sir"),
    ({"type": "ends_with", "text": "Any questions?"}, "That is all. Any questions?", "Any questions? That is all."),
    ({"type": "num_sentences_max", "n": 2}, "One. Two!", "One. Two. Three?"),
]


@pytest.mark.parametrize("instruction,good,bad", INSTRUCTION_CASES, ids=[c[0]["type"] for c in INSTRUCTION_CASES])
def test_each_instruction_check_accepts_and_rejects(instruction, good, bad):
    item = ex(instructions=[instruction])
    assert score("instruction_following", good, item) == 1.0
    assert score("instruction_following", bad, item) == 0.0


def test_every_instruction_type_has_a_case():
    assert {c[0]["type"] for c in INSTRUCTION_CASES} == set(INSTRUCTION_CHECKS)


def test_strict_is_all_or_nothing_loose_is_the_fraction():
    item = ex(instructions=[{"type": "lowercase"}, {"type": "max_words", "n": 2}, {"type": "min_words", "n": 1},
                            {"type": "required_words", "words": ["zebra"]}])
    text = "three small words"  # lowercase and >= 1 word, but 3 words and no zebra
    assert score("instruction_following", text, item) == 0.0
    assert score("instruction_following_loose", text, item) == pytest.approx(0.5)
    assert score("instruction_following", "", item) == 0.0  # an empty response obeys nothing
    assert score("instruction_following_loose", "   ", item) == 0.0


@pytest.mark.parametrize(
    "instructions,match",
    [
        ([{"type": "rhyme_scheme"}], "rhyme_scheme"),
        ([{"type": "min_words"}], "needs 'n'"),
        ([{"type": "min_words", "n": "5"}], "'n' must be a int"),
        ([{"type": "min_words", "n": True}], "'n' must be a int"),
        ([{"type": "lowercase", "strict": True}], "unexpected strict"),
        ([{"n": 3}], "no 'type'"),
        ([], "non-empty list"),
        ("lowercase", "non-empty list"),
    ],
)
def test_malformed_instructions_are_data_errors(instructions, match):
    with pytest.raises(ReadJaxError, match=match):
        score("instruction_following", "fine", ex(instructions=instructions))


# =========================================================================== tool calls
GOLD_CALL = json.dumps({"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "metric": True}})


@pytest.mark.parametrize(
    "completion,expected",
    [
        ('{"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "metric": true}}', 1.0),
        ('Calling the tool.\n```json\n{"name": "get_weather",\n'
         ' "arguments": {"metric": true, "days": 3.0, "city": "Paris"}}\n```', 1.0),  # key order, 3.0 == 3
        ('{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\", \\"days\\": 3, \\"metric\\": true}"}', 1.0),
        ("get_weather(city='Paris', days=3, metric=True)", 1.0),
        ("```python\nget_weather(city=\"Paris\", days=3, metric=True)\n```", 1.0),
        ('{"name": "get_weather", "arguments": {"city": "Paris", "days": "3", "metric": true}}', 0.0),  # wrong type
        ('{"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "metric": 1}}', 0.0),  # 1 is not true
        ('{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}', 0.0),  # missing argument
        ('{"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "metric": true, "x": 1}}', 0.0),
        ('{"name": "get_forecast", "arguments": {"city": "Paris", "days": 3, "metric": true}}', 0.0),
        ("get_weather('Paris', 3, True)", 0.0),  # positional: names unknown
        ("get_weather(city=__import__('os').system('touch /tmp/pwned_by_tool_call'), days=3, metric=True)", 0.0),
        ("", 0.0),
        ("I cannot call tools.", 0.0),
    ],
)
def test_tool_call(completion, expected):
    assert score("tool_call", completion, ex(GOLD_CALL)) == expected


def test_tool_call_gold_must_be_a_call():
    for bad in ("get_weather", '{"arguments": {}}', '{"name": "f", "arguments": [1]}'):
        with pytest.raises(ReadJaxError, match="item-1"):
            score("tool_call", '{"name": "f", "arguments": {}}', ex(bad))


# =========================================================================== dispatch and registry
def test_per_item_dispatches_on_eval_type():
    assert score("per_item", "#### 7", ex("7", eval_type="gsm8k_exact")) == 1.0
    assert score("per_item", "#### 8", ex("7", eval_type="numeric_exact")) == 0.0
    assert score("per_item", GOLD_CALL, ex(GOLD_CALL, eval_type="tool_call")) == 1.0
    with pytest.raises(ReadJaxError, match="eval_type"):
        score("per_item", "7", ex("7"))
    for bad in ("per_item", "mc_loglik"):
        with pytest.raises(ReadJaxError, match="cannot score"):
            score("per_item", "7", ex("7", choices=("a",), gold=0, eval_type=bad))


def test_aliases_resolve_and_unknown_names_list_the_known():
    for alias, target in ALIASES.items():
        assert get_metric(alias) is METRICS[target]
    assert get_metric("humaneval_pass@1").name == "pass_at_1"
    with pytest.raises(ReadJaxError, match="unknown eval_type 'bleu'.*numeric_exact"):
        get_metric("bleu")
    assert all(m.kind in ("generate", "choice") and m.name == k for k, m in METRICS.items())


def test_task_cards_accept_the_new_eval_types():
    card = dict(name="t", description="d", input_format="i", output_format="o", exemplars=(),
                dev_size=1, test_size=1, dev_seed=0, test_seed=1)
    for eval_type in ("humaneval_pass@1", "instruction_following", "tool_call", "logprob"):
        assert TaskCard(**card, eval_type=eval_type).eval_type == eval_type
    with pytest.raises(ReadJaxError, match="eval_type"):
        TaskCard(**card, eval_type="nope")


# =========================================================================== output formats
@pytest.mark.parametrize(
    "fmt,good,bad",
    [
        ("integer", "1,234", "The answer is 4"),
        ("integer", "-7", "3.5"),
        ("number", "3.5", "about 3.5"),
        ("number", "-3/4", "3/4 cup"),
        ("json", '{"a": [1, 2]}', "{'a': 1}"),
        ("json", '```json\n{"a": 1}\n```', "json please"),
        ("python", "```python\ndef f():\n    return 1\n```", "def f(:"),
        ("one_word", "Paris.", "Paris, France"),
        ("yes_no", "Yes.", "Yes, because it rains"),
        ("letter", "(B)", "B because"),
    ],
)
def test_check_format(fmt, good, bad):
    assert check_format(fmt, good) and not check_format(fmt, bad)


def test_check_format_empty_answers_and_unknown_formats():
    assert check_format("free", "") and check_format("free", "anything at all")
    for fmt in set(OUTPUT_FORMATS) - {"free"}:
        assert not check_format(fmt, "   "), fmt
    with pytest.raises(ReadJaxError, match="output_format 'haiku'"):
        check_format("haiku", "x")
