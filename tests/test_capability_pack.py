"""The read8 capability pack: loading, validation errors, references re-derived independently, tiers,
the leakage filter, sampler determinism and pack-built tasks."""

import itertools
import json
import math
import re
import subprocess
import sys
from collections import Counter, deque
from fractions import Fraction

import numpy as np
import pytest

from read_jax.capabilities import DEFAULT_CAPABILITIES, TIERS, normalise_prompt, prompt_hash
from read_jax.capabilities.pack import EVAL_TYPES, PACK_DIR, CapabilityPack
from read_jax.capabilities.packs import build_pools
from read_jax.capabilities.templates import Template
from read_jax.errors import ReadJaxError

SEEDS = range(6)


@pytest.fixture(scope="module")
def pack():
    return CapabilityPack.load("read8")


@pytest.fixture(scope="module")
def src(pack):
    return pack.source(0)


@pytest.fixture(scope="module")
def examples(pack, src):
    """A few instances of every template: {template id: [Example, ...]}."""
    return {t.id: [src.instantiate(t, np.random.default_rng([s, i])) for s in SEEDS]
            for i, t in enumerate(pack.library)}


def _pool(pack, name):
    return pack.pools[name]


# ---------------------------------------------------------------- shape of the pack
def test_counts_capabilities_and_metrics(pack):
    assert pack.capabilities == DEFAULT_CAPABILITIES
    counts = Counter(t.capability for t in pack.library)
    assert set(counts) == set(DEFAULT_CAPABILITIES)
    assert min(counts.values()) >= 25 and sum(counts.values()) >= 200, counts
    for c in pack.capabilities:
        assert len(pack.verifiable(c)) >= 5, c  # real tasks can be built from every capability
    assert {t.eval_type for t in pack.library} - {""} == set(EVAL_TYPES)
    ids = [t.id for t in pack.library]
    assert len(ids) == len(set(ids))


def test_templates_round_trip_through_json(pack):
    for t in pack.library:
        back = Template.from_dict(json.loads(json.dumps(t.to_dict())))
        assert back == t and back.info == t.info and back.factors == t.factors, t.id


def test_pools_rebuild_byte_for_byte():
    built = build_pools.build()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in build_pools.POOL_DIR.glob("*.json")}
    assert set(built) == set(on_disk)
    for name, text in built.items():
        assert text == on_disk[name], f"{name} is stale: run python -m read_jax.capabilities.packs.build_pools"


def test_instances_are_deterministic_and_parse_back(pack, src, examples):
    for i, t in enumerate(pack.library):
        exs = examples[t.id]
        again = src.instantiate(t, np.random.default_rng([0, i]))
        assert (again.prompt, again.answer, again.choices, again.info) == (exs[0].prompt, exs[0].answer,
                                                                            exs[0].choices, exs[0].info)
        for ex in exs:
            assert ex.capability == t.capability and ex.template_id == t.id and ex.tier in TIERS
            assert 0.0 <= ex.difficulty <= 1.0
            assert ex.info["eval_type"] == t.eval_type and ex.info["output_format"] == t.output_format
            assert t.parse(ex.prompt) == ex.slot_dict, t.id
            assert not re.search(r"\{[a-z_]+(?:\.[a-z_]+)?\}", ex.prompt) and ex.prompt.strip() == ex.prompt, t.id
            if t.eval_type and t.eval_type != "instruction_following" and t.eval_type != "pass_at_1":
                assert ex.answer, t.id
        assert len({ex.prompt for ex in exs}) > 1, f"{t.id}: every seed gives the same prompt"


def test_every_reference_scores_one_under_its_metric(pack, examples):
    """The project's metrics accept each verifiable reference (and reject a corrupted one)."""
    metrics = pytest.importorskip("read_jax.evals.metrics")
    for t in pack.library:
        if not t.eval_type:
            continue
        metric = metrics.get_metric(t.eval_type)
        for ex in examples[t.id][:2]:
            if t.eval_type == "pass_at_1":
                continue  # run in a subprocess below, in one batch
            if not ex.answer:  # open-ended instruction following: the instructions must be well formed
                metric.score("a short reply", ex)
                continue
            assert metric.score(ex.answer, ex) == 1.0, (t.id, ex.answer)
            wrong = {"choice_letter": "A" if ex.answer != "A" else "B", "numeric_exact": ex.answer + "1",
                     "tool_call": '{"name": "nope", "arguments": {}}'}.get(t.eval_type, "zzz " + ex.answer[::-1])
            if t.eval_type != "instruction_following":
                assert metric.score(wrong, ex) == 0.0, (t.id, wrong)


def test_choice_items_are_consistent(pack, examples):
    for t in pack.library:
        if t.eval_type != "choice_letter":
            continue
        for ex in examples[t.id]:
            gold = ex.info["gold"]
            assert ex.answer == "ABCDEFGHIJ"[gold] and len(set(ex.choices)) == len(ex.choices) >= 2
            for letter, choice in zip("ABCDEFGHIJ", ex.choices):
                assert f"{letter}) {choice}" in ex.prompt


# ---------------------------------------------------------------- references re-derived: math
UNITS = {("kilometres", "metres"): 1000, ("metres", "centimetres"): 100, ("metres", "millimetres"): 1000,
         ("centimetres", "millimetres"): 10, ("hours", "minutes"): 60, ("minutes", "seconds"): 60,
         ("hours", "seconds"): 3600, ("days", "hours"): 24, ("weeks", "days"): 7, ("years", "months"): 12,
         ("decades", "years"): 10, ("centuries", "years"): 100, ("kilograms", "grams"): 1000,
         ("tonnes", "kilograms"): 1000, ("litres", "millilitres"): 1000, ("days", "minutes"): 1440}
F = Fraction
MATH = {  # template id -> the answer from the prompt's slot values, written independently of the pack
    "math.add": lambda s: s["a"] + s["b"], "math.sub": lambda s: s["a"] - s["b"],
    "math.mul_small": lambda s: s["a"] * s["c"], "math.mul_long": lambda s: s["a"] * s["b"],
    "math.div": lambda s: F(s["n"], s["m"]), "math.percent": lambda s: F(s["p"] * s["base"], 100),
    "math.paren": lambda s: (s["a"] + s["b"]) * s["c"], "math.story_give": lambda s: s["a"] - s["b"] + s["c"],
    "math.boxes": lambda s: F(s["n"], s["m"]), "math.units": lambda s: s["b"] * UNITS[(s["big"], s["small"])],
    "math.mod": lambda s: s["a"] % s["c"], "math.average": lambda s: F(s["a"] + s["b"] + s["c"], 3),
    "math.spend": lambda s: s["b"] * s["c"], "math.change": lambda s: s["bill"] - s["b"] * s["c"],
    "math.square": lambda s: s["b"] ** 2, "math.solve_add": lambda s: s["a"] - s["b"],
    "math.solve_mul": lambda s: F(s["n"], s["c"]), "math.solve_linear": lambda s: F(s["n"] - s["b"], s["c"]),
    "math.add_sub": lambda s: s["a"] + s["b"] - s["c"], "math.mul_add": lambda s: s["a"] * s["c"] + s["b"],
    "math.three_step": lambda s: (s["a"] - s["b"]) * s["c"] + s["d"],
    "math.percent_plus": lambda s: F(s["p"] * s["base"], 100) + s["extra"],
    "math.discount": lambda s: s["base"] - F(s["p"] * s["base"], 100), "math.lcm": lambda s: math.lcm(s["c"], s["d"]),
    "math.gcd": lambda s: math.gcd(s["a"], s["b"]), "math.triangular": lambda s: sum(range(1, s["b"] + 1)),
    "math.savings": lambda s: s["c"] * s["d"] - s["e"], "math.percent_of": lambda s: F(100 * s["part"], s["base"]),
    "math.div_plus": lambda s: F(s["n"], s["m"]) + s["extra"], "math.perimeter": lambda s: 2 * (s["a"] + s["c"]),
    "math.area": lambda s: s["a"] * s["c"], "math.eighths": lambda s: F(s["a"], 8),
    "math.half_sum": lambda s: F(s["a"] + s["b"], 2), "math.speed": lambda s: s["c"] * s["d"],
}


def test_math_answers_recomputed(pack, src):
    verifiable = {t.id for t in pack.verifiable("math")}
    assert verifiable <= set(MATH), f"add independent checks for {sorted(verifiable - set(MATH))}"
    for i, t in enumerate(pack.verifiable("math")):
        rng = np.random.default_rng([7, i])
        for _ in range(40):
            ex = src.instantiate(t, rng)
            slots = {k: (int(v) if re.fullmatch(r"-?\d+", v) else v) for k, v in ex.slot_dict.items()}
            want = MATH[t.id](slots)
            assert F(want).denominator in (1, 2, 4, 8), (t.id, want)  # exact in decimal
            assert F(ex.answer) == want, (t.id, ex.prompt, ex.answer, want)
            if t.output_format == "integer":
                assert re.fullmatch(r"-?\d+", ex.answer), (t.id, ex.answer)
    if "math.change" in verifiable:
        ex = src.instantiate(pack.library["math.change"], 3)
        assert int(ex.slot_dict["bill"]) > int(ex.slot_dict["b"]) * int(ex.slot_dict["c"])


# ---------------------------------------------------------------- code: run in a plain subprocess
_RUNNER = r"""
import contextlib, io, json, sys
results = []
for program in json.load(sys.stdin):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(program, {"__name__": "__check__"})
        results.append([True, out.getvalue()])
    except Exception as err:
        results.append([False, repr(err)])
json.dump(results, sys.stdout)
"""


def _run(programs):
    proc = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps(programs), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_code_references_run_in_a_subprocess(pack, examples):
    fns, pairs, buggy = (_pool(pack, n) for n in ("functions", "function_pairs", "buggy_functions"))
    snippets = _pool(pack, "snippets")
    assert len(fns) >= 30 and len({f["name"] for f in fns}) == len(fns)
    for f in fns:
        assert f["n_tests"] >= 3 and f["test"].count("assert ") == f["n_tests"]
        assert f["code_prompt"].startswith(f["signature"]) and f["solution"].startswith(f["signature"])
    progs, want = [], []

    def add(code, test, entry, ok):
        progs.append(f"{code}\n\n{test}\ncheck({entry})\n")
        want.append(ok)

    for f in fns:
        add(f["solution"], f["test"], f["entry_point"], True)
        add(f"def {f['name']}(*args, **kwargs):\n    return None\n", f["test"], f["entry_point"], False)  # tests bite
    for p in pairs:
        add(p["solution"], p["test"], p["entry_point"], True)
    for b in buggy:
        add(b["solution"], b["test"], b["entry_point"], True)
        add(b["buggy"], b["test"], b["entry_point"], False)
        add(b["buggy"], f"def check(candidate):\n    assert {b['failing']}\n", b["entry_point"], False)
    for t in pack.library:  # every pass_at_1 instance: the reference passes the info's test
        if t.eval_type == "pass_at_1":
            for ex in examples[t.id][:2]:
                add(ex.answer, ex.info["test"], ex.info["entry_point"], True)
    n_code = len(progs)
    progs += [s["code"] for s in snippets]
    results = _run(progs)
    for prog, ok, (passed, detail) in zip(progs[:n_code], want, results[:n_code]):
        assert passed == ok, (prog, detail)
    for s, (passed, printed) in zip(snippets, results[n_code:]):
        assert passed and printed.strip() == s["output"], (s["code"], printed)


def test_code_pass_at_1_metric_accepts_references(pack, examples):
    metrics = pytest.importorskip("read_jax.evals.metrics")
    metric = metrics.get_metric("pass_at_1")
    for tid in ("co.write", "co.pair", "co.fix"):
        ex = examples[tid][0]
        assert metric.score(ex.answer, ex) == 1.0, tid
        assert metric.score("def nothing():\n    pass\n", ex) == 0.0, tid


# ---------------------------------------------------------------- tool use: schema validation
def _valid(value, schema):
    """A small JSON-schema check (types, enums, required, no unknown properties, arrays)."""
    kind = schema["type"]
    if kind == "object":
        props = schema.get("properties", {})
        return (isinstance(value, dict) and set(schema.get("required", [])) <= set(value)
                and set(value) <= set(props) and all(_valid(v, props[k]) for k, v in value.items()))
    if kind == "array":
        return isinstance(value, list) and all(_valid(v, schema["items"]) for v in value)
    ok = {"string": isinstance(value, str), "integer": isinstance(value, int) and not isinstance(value, bool),
          "number": isinstance(value, (int, float)) and not isinstance(value, bool),
          "boolean": isinstance(value, bool)}[kind]
    return ok and ("enum" not in schema or value in schema["enum"])


def _leaves(value, schema):
    """(value, schema) of every scalar inside a call's arguments."""
    if schema["type"] == "object":
        for k, v in value.items():
            yield from _leaves(v, schema["properties"][k])
    elif schema["type"] == "array":
        for v in value:
            yield from _leaves(v, schema["items"])
    else:
        yield value, schema


def test_tool_calls_validate_against_their_schemas(pack, examples):
    tools = {t["name"]: t for t in _pool(pack, "tools")}
    assert len(tools) >= 15
    for rec in _pool(pack, "tool_calls"):
        call = json.loads(rec["call"])
        assert call["name"] in rec["tools"] and len(rec["tools"]) == rec["n_tools"]
        assert _valid(call["arguments"], tools[call["name"]]["parameters"]), rec
        for v, schema in _leaves(call["arguments"], tools[call["name"]]["parameters"]):
            if not isinstance(v, bool) and "enum" not in schema:  # every free value is stated in the request
                assert str(v) in rec["request"], (v, rec)
    assert not _valid({"city": 3}, tools["get_weather"]["parameters"])  # the checker can fail
    assert not _valid({"unit": "celsius"}, tools["get_weather"]["parameters"])
    for t in pack.library:
        if t.eval_type == "tool_call":
            for ex in examples[t.id]:
                call = json.loads(ex.answer)
                shown = {s["name"]: s for s in ex.info["tools"]}
                assert call["name"] in shown and _valid(call["arguments"], shown[call["name"]]["parameters"])
                assert all(json.dumps(s) in ex.prompt for s in ex.info["tools"])


def test_tool_results_answers_rederived(pack):
    for rec in _pool(pack, "tool_results"):
        result, q = json.loads(rec["result"]), rec["question"]
        if "highest price" in q:
            want = max(result, key=lambda r: r["price"])["ticker"]
        elif "cheapest flight" in q:
            want = min(f["price"] for f in result["flights"])
        elif "in stock" in q:
            want = sum(p["in_stock"] for p in result["results"])
        else:
            field = {"temperature": "temperature_c", "humidity": "humidity_percent", "wind": "wind_kph"}
            want = result[next(v for k, v in field.items() if k in q)]
        assert rec["answer"] == str(want), rec


# ---------------------------------------------------------------- reasoning: brute force
def test_orderings_rederived_by_brute_force(pack):
    for rec in _pool(pack, "orderings"):
        facts = re.findall(r"(\w+) is (\w+) than (\w+)\.", rec["facts"])
        people = sorted({p for a, _, b in facts for p in (a, b)})
        assert len(people) == rec["n"] and len(facts) == rec["constraints"]
        pairs = [(a, b) if w == rec["comparative"] else (b, a) for a, w, b in facts]  # (more, less)
        assert all(w in (rec["comparative"], rec["opposite"]) for _, w, _ in facts)
        sols = [order for order in itertools.permutations(people)
                if all(order.index(a) < order.index(b) for a, b in pairs)]
        assert len(sols) == 1, rec
        order = list(sols[0])
        assert (order[0], order[1], order[-1]) == (rec["first"], rec["second"], rec["last"])
        assert json.loads(rec["order_json"]) == order
        assert rec["q_answer"] == ("yes" if order.index(rec["q_x"]) < order.index(rec["q_y"]) else "no")


def test_chains_booleans_programs_rederived(pack):
    for rec in _pool(pack, "chains"):
        boss = dict(re.findall(r"(\w+) reports to (\w+)\.", rec["facts"]))
        who = rec["start"]
        for _ in range(rec["question"].count("the manager of")):
            who = boss[who]
        assert who == rec["answer"] and rec["question"].endswith(rec["start"])
        top, levels = rec["start"], 0
        while top in boss:
            top, levels = boss[top], levels + 1
        assert top == rec["top"] and levels == rec["constraints"] - rec["distractors"]
    for rec in _pool(pack, "booleans"):
        value = eval(rec["expr"], {"__builtins__": {}})  # our own literal expression
        env = {k: v == "True" for k, v in re.findall(r"(\w) = (True|False)", rec["bindings"])}
        assert eval(rec["var_expr"], {"__builtins__": {}}, env) == value
        assert rec["value"] == str(value).lower() and rec["yes_no"] == ("yes" if value else "no")
    for rec in _pool(pack, "programs"):
        env = {}
        exec(rec["program"].replace("; ", "\n"), {"__builtins__": {}}, env)
        assert env[rec["target"]] == rec["value"] and len(env) == rec["steps"]


_SAYS = re.compile(r'(\w+) says: "([^"]+)"')
_FORMS = [  # statement -> truth as a function of the speaker and an assignment {name: is_knight}
    (r"(\w+) is a knave\.", lambda k, s, x: not k[x]), (r"(\w+) is a knight\.", lambda k, s, x: k[x]),
    (r"(\w+) and (\w+) are both knights\.", lambda k, s, x, y: k[x] and k[y]),
    (r"At least one of (\w+) and (\w+) is a knave\.", lambda k, s, x, y: not (k[x] and k[y])),
    (r"(\w+) and I are the same kind\.", lambda k, s, x: k[x] == k[s]),
    (r"(\w+) and I are different kinds\.", lambda k, s, x: k[x] != k[s]),
]


def _statement(text):
    for pattern, fn in _FORMS:
        m = re.fullmatch(pattern, text)
        if m:
            return fn, m.groups()
    raise AssertionError(f"unparsed statement {text!r}")


def test_knights_and_syllogisms_rederived(pack):
    for rec in _pool(pack, "knights"):
        said = [(p, *_statement(s)) for p, s in _SAYS.findall(rec["statements"])]
        people = [p for p, _, _ in said]
        sols = [k for bits in itertools.product([True, False], repeat=len(people))
                for k in [dict(zip(people, bits))] if all(k[p] == fn(k, p, *args) for p, fn, args in said)]
        assert len(sols) == 1, rec
        assert rec["answer"] == ("knight" if sols[0][rec["ask"]] else "knave")
    for rec in _pool(pack, "syllogisms"):
        edges = re.findall(r"All (\w+) are (\w+)\.", rec["premises"])
        reach, frontier = {rec["x"]}, [rec["x"]]
        while frontier:
            a = frontier.pop()
            for u, v in edges:
                if u == a and v not in reach:
                    reach.add(v)
                    frontier.append(v)
        assert rec["answer"] == ("yes" if rec["y"] in reach else "no"), rec


def test_sequences_rederived(pack):
    def predictions(t):
        d = [b - a for a, b in zip(t, t[1:])]
        out = set()
        if len(set(d)) == 1:
            out.add(t[-1] + d[0])
        if 0 not in t and all(b % a == 0 for a, b in zip(t, t[1:])) and len({b // a for a, b in zip(t, t[1:])}) == 1:
            out.add(t[-1] * (t[1] // t[0]))
        dd = [b - a for a, b in zip(d, d[1:])]
        if len(set(dd)) == 1:
            out.add(t[-1] + d[-1] + dd[0])
        if len(set(d[0::2])) == 1 and len(set(d[1::2])) == 1:
            out.add(t[-1] + d[-2])
        if all(t[i] == t[i - 1] + t[i - 2] for i in range(2, len(t))):
            out.add(t[-1] + t[-2])
        return out

    for rec in _pool(pack, "sequences"):
        terms = [int(x) for x in rec["terms"].split(", ")]
        assert predictions(terms) == {rec["next"]}, rec


# ---------------------------------------------------------------- knowledge, documents, languages, rules
def test_knowledge_facts_are_consistent(pack):
    els = _pool(pack, "elements")
    by_num = {e["number"]: e for e in els}
    assert len(by_num) == len(els) and len({e["symbol"] for e in els}) == len(els)
    assert set(range(1, 37)) <= set(by_num)
    assert [by_num[z]["symbol"] for z in (1, 6, 8, 26, 29, 47, 79, 82, 92)] == \
        ["H", "C", "O", "Fe", "Cu", "Ag", "Au", "Pb", "U"]
    countries = _pool(pack, "countries")
    assert len({c["name"] for c in countries}) == len(countries) == len({c["capital"] for c in countries})
    assert {c["continent"] for c in countries} == {c["name"] for c in _pool(pack, "continents")}
    spot = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Canada": "Ottawa", "Australia": "Canberra",
            "Peru": "Lima", "Egypt": "Cairo"}
    assert all(next(c for c in countries if c["name"] == n)["capital"] == cap for n, cap in spot.items())
    assert [p["name"] for p in sorted(_pool(pack, "planets"), key=lambda p: p["order"])] == \
        ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"]


def test_gk_answers_follow_the_pools(pack, src):
    capital = {c["name"]: c["capital"] for c in _pool(pack, "countries")}
    number = {e["name"]: e["number"] for e in _pool(pack, "elements")}
    for s in range(30):
        ex = src.instantiate(pack.library["gk.capital"], s)
        assert ex.answer == capital[ex.slot_dict["country"]]
        ex = src.instantiate(pack.library["gk.more_protons"], s)
        a, b = ex.slot_dict["a"], ex.slot_dict["b"]
        assert ex.answer == max((a, b), key=number.get)
        ex = src.instantiate(pack.library["gk.capital_check"], s)
        assert ex.answer == ("yes" if capital[ex.slot_dict["country"]] == ex.slot_dict["shown"] else "no")


def test_documents_rederived(pack):
    fact = re.compile(r"(?:the |The )(\w+) (?:storage room|camp|collection|orchard)[^.]*? (\d+)(?: \w+)*?\.")
    for rec in _pool(pack, "documents"):
        text = rec["text"]
        title, *paras = text.split("\n\n")
        assert title == rec["title"] and len(paras) == rec["n_paragraphs"] and len(text.split()) == rec["n_words"]
        values = {}
        for e, v in fact.findall(text):
            assert e not in values, (e, rec["title"])  # each entity once: no conflicting facts
            values[e] = int(v)
        assert len(values) == rec["distractors"] + 1 == int(rec["count_answer"])
        assert values[rec["entity"]] == int(rec["answer"])
        assert [e for e, v in values.items() if v == int(rec["answer"])] == [rec["which_answer"]] == [rec["entity"]]
        e2 = re.search(r"and the (\w+) ", rec["pair_question"]).group(1)
        assert values[rec["entity"]] + values[e2] == int(rec["pair_answer"])
        where = [i + 1 for i, p in enumerate(paras) if rec["entity"] in p]
        assert where == [rec["needle_paragraph"]]
        assert rec["depth"] == round((where[0] - 1) / max(1, rec["n_paragraphs"] - 1), 2)
        assert rec["entity"] in rec["question"] and text.count(rec["entity"]) == 1
    lengths = [r["n_words"] for r in _pool(pack, "documents")]
    assert min(lengths) < 400 and max(lengths) > 1500  # lengths vary


def test_languages_are_consistent(pack):
    langs = [lang["code"] for lang in _pool(pack, "languages")]
    assert len(langs) >= 5
    lex = _pool(pack, "lexicon")
    for code in langs:
        words = [r[code] for r in lex]
        assert len(set(words)) == len(words), code  # one reading per word within a language
    assert len({r["en"] for r in lex}) == len(lex)
    spot = {"dog": {"es": "perro", "fr": "chien", "de": "Hund", "it": "cane", "pt": "cão"},
            "water": {"es": "agua", "fr": "eau", "de": "Wasser", "it": "acqua", "pt": "água"}}
    assert all(next(r for r in lex if r["en"] == en)[c] == w for en, d in spot.items() for c, w in d.items())
    for rec in _pool(pack, "ml_arith"):
        a, b = rec["a"], rec["b"]
        want = {"+": a + b, "-": a - b, "*": a * b}[rec["op"]]
        assert rec["answer"] == str(want) and f"{a} " in rec["question"] and f" {b}" in rec["question"]
    every = Counter(w.lower() for r in lex for c in langs for w in [r[c]])
    assert all(every[r["word"].lower()] == 1 for r in _pool(pack, "langid"))


def test_rule_sets_are_well_formed(pack):
    metrics = pytest.importorskip("read_jax.evals.metrics")
    for rec in _pool(pack, "rule_sets"):
        kinds = [i["type"] for i in rec["instructions"]]
        assert len(kinds) == rec["n_rules"] == rec["rules_text"].count("\n- ") + 1
        assert all(k in metrics.INSTRUCTION_CHECKS for k in kinds)
        assert not {"lowercase", "uppercase"} <= set(kinds)
        n = {i["type"]: i.get("n") for i in rec["instructions"]}
        assert n.get("min_words", 0) * 2 <= n.get("max_words", 10 ** 6)
        for i in rec["instructions"]:
            if "text" in i and "lowercase" in kinds:
                assert i["text"] == i["text"].lower()
    for rec in _pool(pack, "word_lists"):
        words = rec["words_text"].split(", ")
        assert json.loads(rec["sorted_json"]) == sorted(words) and rec["n"] == len(words)
        assert rec["reversed_text"] == ", ".join(words[::-1]) and rec["initials"] == "".join(w[0] for w in words)
        assert [w for w in words if len(w) == max(map(len, words))] == [rec["longest"]]
        assert rec["long_count"] == sum(len(w) > 6 for w in words)


# ---------------------------------------------------------------- difficulty and tiers
def test_every_tier_is_reachable_for_every_capability(pack, src):
    for c in pack.capabilities:
        rng = np.random.default_rng(11)
        for tier in TIERS:
            assert src.sample(c, rng, tier=tier).tier == tier
            assert src.sample(c, rng, tier=tier, templates=pack.verifiable(c)).tier == tier
        d = [src.sample(c, rng).difficulty for _ in range(200)]
        assert max(d) - min(d) > 0.3, c  # difficulty spreads, it is not one value


def test_difficulty_follows_the_factors(pack, src):
    """More digits / more hops / a longer document -> no lower difficulty."""
    def mean_d(tid, key, lo):
        t, rng = pack.library[tid], np.random.default_rng(5)
        exs = [src.instantiate(t, rng) for _ in range(200)]
        small = [e.difficulty for e in exs if key(e) <= lo]
        big = [e.difficulty for e in exs if key(e) > lo]
        return np.mean(small), np.mean(big)

    small, big = mean_d("math.add", lambda e: len(e.slot_dict["a"]), 2)
    assert big > small
    small, big = mean_d("lc.needle", lambda e: len(e.slot_dict["doc"].split()), 1000)
    assert big > small
    small, big = mean_d("re.chain", lambda e: e.slot_dict["question"].count("manager"), 2)
    assert big > small


def test_probe_suite_is_stratified_and_fixed(pack):
    suite = pack.probe_suite(9, seed=3)
    assert list(suite) == list(pack.capabilities)
    for c, exs in suite.items():
        assert len(exs) == 9 and Counter(e.tier for e in exs) == {"easy": 3, "medium": 3, "hard": 3}, c
        assert len({prompt_hash(e.prompt) for e in exs}) == 9
    again = pack.probe_suite(9, seed=3)
    assert all([e.prompt for e in suite[c]] == [e.prompt for e in again[c]] for c in suite)
    assert [e.prompt for e in pack.probe_suite(9, seed=4)["math"]] != [e.prompt for e in suite["math"]]


# ---------------------------------------------------------------- sampler
def test_sampler_stream_is_deterministic_and_resumable(pack):
    w = {c: 1.0 for c in pack.capabilities}
    a, b = pack.prompt_sampler(seed=5), pack.prompt_sampler(seed=5)
    first = [e.prompt for e in a.sample(w, 40, progress=0.5)]
    assert first == [e.prompt for e in b.sample(w, 40, progress=0.5)]
    state = a.state_dict()
    nxt = [e.prompt for e in a.sample(w, 10, progress=0.5)]
    c = pack.prompt_sampler(seed=5)
    c.load_state_dict(state)
    assert [e.prompt for e in c.sample(w, 10, progress=0.5)] == nxt
    assert first != [e.prompt for e in pack.prompt_sampler(seed=6).sample(w, 40, progress=0.5)]


def test_share_cap_holds_for_a_one_hot_allocation(pack):
    s = pack.prompt_sampler(seed=1)
    exs = s.sample({"code": 1.0}, 300)
    assert {e.capability for e in exs} == {"code"}
    window: deque[str] = deque(maxlen=128)
    for e in exs:
        window.append(e.template_id)
        assert max(Counter(window).values()) <= 32


def test_leakage_filter_rejects_evaluation_prompts(pack):
    w = {c: 1.0 for c in pack.capabilities}
    stream = [e.prompt for e in pack.prompt_sampler(seed=9).sample(w, 60)]
    evals = [f"  {p.upper()}\n " for p in stream[:30]]  # equal after normalisation, not byte-equal
    s = pack.prompt_sampler(seed=9, eval_prompts=evals)
    assert len(s.leakage) == len({normalise_prompt(p) for p in evals})
    assert all(s.leakage.is_leaked(p) for p in stream[:30])
    again = [e.prompt for e in s.sample(w, 60)]
    assert not {prompt_hash(p) for p in again} & {prompt_hash(p) for p in evals}
    assert s.stats["leak_rejected"] > 0


# ---------------------------------------------------------------- tasks
def test_task_from_verifiable_templates(pack):
    metrics = pytest.importorskip("read_jax.evals.metrics")
    try:
        metrics.get_metric("per_item")
    except ReadJaxError:
        pytest.skip("read_jax.evals.metrics has no per_item metric yet")
    task = pack.task("mix", {"math": 0.5, "tool_use": 0.3, "reasoning": 0.2}, n_dev=12, n_test=20, seed=4)
    assert task.card.eval_type == "per_item" and len(task.dev) == 12 and len(task.test) == 20
    dev = {prompt_hash(e.prompt) for e in task.dev}
    test = {prompt_hash(e.prompt) for e in task.test}
    assert len(dev) == 12 and len(test) == 20 and not dev & test
    assert not {prompt_hash(p) for p, _ in task.card.exemplars} & (dev | test)
    for e in task.dev + task.test:
        assert e.task == "mix" and e.capability in ("math", "tool_use", "reasoning") and e.info["eval_type"]
        if e.info["eval_type"] != "pass_at_1" and e.answer:
            assert task.score(e.answer, e) == 1.0
    assert [e.prompt for e in pack.task("mix", {"math": 0.5, "tool_use": 0.3, "reasoning": 0.2}, 12, 20, seed=4).dev] \
        == [e.prompt for e in task.dev]


def test_task_mixture_errors(pack):
    for bad in ({"cooking": 1.0}, {"math": 0.0}, {"math": -1.0, "code": 2.0}):
        with pytest.raises(ReadJaxError, match="task 'x'"):
            pack.task("x", bad, n_dev=2, n_test=2)


# ---------------------------------------------------------------- broken packs
def _write_pack(root, templates, pools=None, **manifest):
    (root / "templates").mkdir(parents=True)
    (root / "pools").mkdir()
    m = {"name": "tiny", "capabilities": ["math"],
         "curriculum": [[0.3, [0.1, 0.8, 0.1]], [0.7, [0.1, 0.5, 0.4]], [None, [0.05, 0.2, 0.75]]],
         "share_cap": {"window": 4, "max_share": 1.0}, "calibration_size": 8,
         "difficulty": {"math": {"doc": "d", "weights": {"steps": 1.0}}}}
    m.update(manifest)
    (root / "pack.json").write_text(json.dumps(m))
    pools = {"nums": {"doc": "n", "records": [{"a": 1, "b": 2}, {"a": 3, "b": 4}, {"a": 5, "b": 6}]}} \
        if pools is None else pools
    (root / "pools" / "p.json").write_text(json.dumps(pools))
    (root / "templates" / "math.jsonl").write_text("".join(json.dumps(t) + "\n" for t in templates))
    return root


def _ok(**kw):
    t = {"id": "m.0", "capability": "math", "scaffold": "{a} + {b}?", "slots": {"a": "nums.a", "b": "nums.b"},
         "output_format": "integer", "eval_type": "numeric_exact", "answer": "{r}", "compute": {"r": "a + b"},
         "factors": {"steps": 1}}
    t.update(kw)
    return t


def test_a_tiny_valid_pack_loads(tmp_path):
    p = CapabilityPack.load(_write_pack(tmp_path / "ok", [_ok()]))
    ex = p.source(0).instantiate(p.library["m.0"], 0)
    a, b = (int(x) for x in re.fullmatch(r"(\d+) \+ (\d+)\?", ex.prompt).groups())
    assert ex.answer == str(a + b) and ex.info["eval_type"] == "numeric_exact"


@pytest.mark.parametrize("change, field", [
    (dict(scaffold="{a} + {b} + {c}?"), "declared slots"),                      # undeclared slot
    (dict(scaffold="{a}?"), "declared slots"),                                  # declared slot unused
    (dict(slots={"a": "numbers.a", "b": "nums.b"}), "slots.a"),                 # no such pool
    (dict(slots={"a": "nums.z", "b": "nums.b"}), "slots.a"),                    # field missing in records
    (dict(compute={"r": "a + nums.z"}), "compute.r"),                           # field missing, in an expression
    (dict(output_format="essay"), "output_format"),
    (dict(eval_type="bleu"), "eval_type"),
    (dict(factors={"steps": 1, "vibes": 2}), "factors"),
    (dict(compute={"r": "__import__('os')"}), "compute.r"),                     # not a pack expression
    (dict(answer="{nope}"), "answer"),
    (dict(eval_type="pass_at_1", info={}), "info.test"),
    (dict(slots={"a": {"type": "nums.a", "record": "x"}, "b": {"type": "nums.b", "record": "y"}},
          compute={"r": "x.a + y.b", "q": "draw('nums')", "s": "draw('nums')"}), "slots"),  # 4 draws, 3 records
])
def test_broken_templates_name_file_line_and_field(tmp_path, change, field):
    root = _write_pack(tmp_path / "bad", [_ok(id="m.ok"), _ok(**change)])
    with pytest.raises(ReadJaxError) as err:
        CapabilityPack.load(root)
    msg = str(err.value)
    assert "math.jsonl:2:" in msg and field in msg and "\n" not in msg, msg


def test_broken_pools_and_manifests(tmp_path):
    with pytest.raises(ReadJaxError, match=r"pool 'nums' is empty"):
        CapabilityPack.load(_write_pack(tmp_path / "a", [_ok()], pools={"nums": {"doc": "", "records": []}}))
    with pytest.raises(ReadJaxError, match=r"p\.json: pool 'nums': field 'records'"):
        CapabilityPack.load(_write_pack(tmp_path / "b", [_ok()], pools={"nums": {"doc": "", "records": 3}}))
    with pytest.raises(ReadJaxError, match=r"pack\.json: field 'share_cap': capability 'math' has 1 templates"):
        CapabilityPack.load(_write_pack(tmp_path / "c", [_ok()], share_cap={"window": 128, "max_share": 0.25}))
    with pytest.raises(ReadJaxError, match=r"pack\.json: field 'curriculum'"):
        CapabilityPack.load(_write_pack(tmp_path / "d", [_ok()], curriculum=[[1.0, [0.3, 0.3, 0.4]]]))
    with pytest.raises(ReadJaxError, match=r"difficulty\.math\.weights"):
        CapabilityPack.load(_write_pack(tmp_path / "e", [_ok()], difficulty={"math": {"weights": {}}}))
    with pytest.raises(ReadJaxError, match=r"math\.jsonl:1: invalid JSON"):
        root = _write_pack(tmp_path / "f", [_ok()])
        (root / "templates" / "math.jsonl").write_text("{not json\n")
        CapabilityPack.load(root)
    with pytest.raises(ReadJaxError, match="not a directory nor a packaged pack"):
        CapabilityPack.load(tmp_path / "missing")
    assert (PACK_DIR / "read8" / "pack.json").is_file()
