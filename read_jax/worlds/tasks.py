"""Downstream tasks: composite ones (two capabilities, composed in one answer) and workloads (a mix);
the chained tasks (two capabilities, asked one after the other) are in `read_jax.worlds.chain_tasks`.

A *workload* task (`WORKLOAD_SPECS`) is a stream of requests, each an ordinary example of
one capability, drawn with weights the world knows and ReAD does not (its true r); utility
is exact match over the stream.  Composite tasks compose skills inside one answer; at the
sizes a 2-core CPU trains, that composition is forgotten faster than capability-only
distillation improves the skills (see `read_jax/demo.py`), so the demo runs on a workload.

Every composite op has a direct `solve` (from slots and the world's data) and, in `PLANS`,
a `ChainPlan`: the component capability requests it decomposes into.  Answered by the
component capabilities' solvers (`World.solve`) the plan is the task's oracle: the test
suite checks that the two agree, i.e. that each task really is the composition of its skills.

With `WorldConfig.scratchpad` (default) answers show the intermediate result
(e.g. `12+5=17`, `tree>miro`), the way a chain-of-thought answer would; utility is
exact match on the whole answer.  Tool calls carry their intermediate result as the
argument already.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping


from read_jax.errors import ReadJaxError
from read_jax.worlds.code_lang import _code_expr, _code_list, _fmt, eval_expr, parse_list
from read_jax.worlds.chain_plan import ChainPlan, last_answer, scratched
from read_jax.worlds.data import ATTRIBUTES, DAYS, OP_WORDS, UNITS, WorldData
from read_jax.worlds.op_base import Op, _pick
from read_jax.worlds.ops import _chain_sample, _digits_pair, apply_steer, chain_order, order_ops
from read_jax.worlds.record_ops import kv_sample, parse_ctx

if TYPE_CHECKING:  # pragma: no cover
    from read_jax.worlds.world import World

Slots = dict[str, str]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    input_format: str
    output_format: str
    requirement: Mapping[str, float]  # the world's true r (normalised by the World)
    dev_seed: int
    test_seed: int


TASK_SPECS: tuple[TaskSpec, ...] = (
    TaskSpec(
        "word_problem",
        "Arithmetic stated in the synthetic language zl: two numbers written as zl digit words joined by '-'"
        " and a zl operator word. Translate the zl words to numbers and plus or minus, then compute.",
        "zl: <number> <operator> <number>?",
        "the translated expression and its value, e.g. 12+5=17",
        {"multilingual": 0.5, "math": 0.5}, 1101, 1102,
    ),
    TaskSpec(
        "tool_fact",
        "Emit a structured tool call (weather, flight or timer) whose argument is a fact recalled from the"
        " knowledge base about a person: the city they live in or their age.",
        "a request that mentions a person's city or age",
        "one tool call, e.g. weather(city,day)",
        {"tool_use": 0.4, "general_knowledge": 0.6}, 1201, 1202,
    ),
    TaskSpec(
        "format_result",
        "Compute the sum or difference of two numbers, then apply formatting instructions to the result"
        " (rev reverses, wrap puts it in brackets, twice repeats it).",
        "<ops>: <a>+<b>  or  compute <a>+<b>, then <ops>",
        "the value, '>', then the formatted value, e.g. 19>[19]",
        {"math": 0.5, "steerability": 0.5}, 1301, 1302,
    ),
    TaskSpec(
        "lookup_translate",
        "Retrieve the value stored under a key in a key=value context, then translate that English word"
        " into the synthetic language zl.",
        "<key=value pairs>. <key> in zl?",
        "the English value, '>', then its zl translation, e.g. tree>miro",
        {"long_context": 0.5, "multilingual": 0.5}, 1401, 1402,
    ),
    TaskSpec(
        "code_tool",
        "Evaluate a tiny list program (len, max, min, sum, sort, rev, indexing) to get a number, then"
        " call the timer tool with that number.",
        "timer for <expression> <unit>, x=<list>",
        "one tool call, e.g. timer(7,min)",
        {"code": 0.6, "tool_use": 0.4}, 1501, 1502,
    ),
    TaskSpec(
        "fact_reason",
        "Find the greatest (or least) person in a chain of '>' comparisons between people, then recall"
        " an attribute of that person (city, color, pet or age) from the knowledge base.",
        "<a>b, b>c facts>. <attribute> of max?",
        "the person, '>', then the attribute value, e.g. zok>kopa",
        {"reasoning": 0.5, "general_knowledge": 0.5}, 1601, 1602,
    ),
)


def _scratch(d: WorldData, mid: str, final: str) -> str:
    return f"{mid}>{final}" if d.config.scratchpad else final


def _entity_uniform(d: WorldData, rng) -> str:
    return _pick(rng, d.entities)


# ------------------------------------------------------------------ word_problem
def _wp_sample(d, rng, fixed) -> Slots:
    a, b = _digits_pair(d, rng)
    opw = _pick(rng, OP_WORDS)
    if opw == "minus":
        a, b = max(a, b), min(a, b)
    return {"za": d.numeral_to_zl(a), "zop": d.en2zl[opw], "zb": d.numeral_to_zl(b)}


def _wp_solve(d: WorldData, s) -> str:
    a, opw, b = int(d.word_to_en(s["za"])), d.word_to_en(s["zop"]), int(d.word_to_en(s["zb"]))
    if opw not in OP_WORDS:
        raise ReadJaxError(f"{s['zop']!r} is not a zl operator word")
    sym, res = ("+", a + b) if opw == "plus" else ("-", a - b)
    return f"{a}{sym}{b}={res}" if d.config.scratchpad else str(res)


# ------------------------------------------------------------------ tool_fact
def _tf_weather_sample(d, rng, fixed) -> Slots:
    return {"e": _entity_uniform(d, rng), "day": _pick(rng, DAYS)}


def _tf_flight_sample(d, rng, fixed) -> Slots:
    e = _entity_uniform(d, rng)
    others = [c for c in d.cities if c != d.kb[e]["city"]]
    return {"e": e, "c": _pick(rng, others)}


def _tf_timer_sample(d, rng, fixed) -> Slots:
    return {"e": _entity_uniform(d, rng), "unit": _pick(rng, UNITS)}


def _kb(d: WorldData, e: str, attr: str) -> str:
    if e not in d.kb:
        raise ReadJaxError(f"unknown entity {e!r}")
    return d.kb[e][attr]


# ------------------------------------------------------------------ format_result
def _fr_sample(sub: bool):
    def sample(d, rng, fixed) -> Slots:
        a, b = _digits_pair(d, rng)
        if sub:
            a, b = max(a, b), min(a, b)
        pool = ("rev", "wrap", "twice")
        k = int(rng.integers(1, min(d.config.steer_max_ops, len(pool)) + 1))
        ops = order_ops([pool[i] for i in rng.permutation(len(pool))[:k]])
        return {"ops": "+".join(ops), "a": str(a), "b": str(b)}

    return sample


def _fr_solve(sub: bool):
    def solve(d, s) -> str:
        v = str(int(s["a"]) - int(s["b"]) if sub else int(s["a"]) + int(s["b"]))
        out = v
        for op in s["ops"].split("+"):
            out = apply_steer(op, out)
        return _scratch(d, v, out)

    return solve


# ------------------------------------------------------------------ lookup_translate
def _lt_solve(d, s) -> str:
    table = parse_ctx(s["ctx"])
    v = table[s["k"]]
    return _scratch(d, v, d.en2zl[v])


# ------------------------------------------------------------------ code_tool
def _ct_sample(d, rng, fixed) -> Slots:
    xs = _code_list(d, rng)
    expr, _ = _code_expr(d, rng, len(xs), numeric_only=True)
    return {"xs": _fmt(xs), "expr": expr, "unit": _pick(rng, UNITS)}


def _ct_solve(d, s) -> str:
    v = eval_expr(s["expr"], parse_list(s["xs"]))
    if isinstance(v, list):
        raise ReadJaxError("code_tool expressions must evaluate to a number")
    return f"timer({v},{s['unit']})"


# ------------------------------------------------------------------ fact_reason
def _fx_sample(d, rng, fixed) -> Slots:
    _, facts = _chain_sample(d, rng)
    return {"facts": ", ".join(facts), "attr": _pick(rng, ATTRIBUTES)}


def _fx_solve(which: int):
    def solve(d, s) -> str:
        e = chain_order(s["facts"])[which]
        return _scratch(d, e, _kb(d, e, s["attr"]))

    return solve


def _no_factors(d, s) -> dict[str, float]:
    return {}


COMPOSITE_OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Op("wp", "word_problem", _wp_sample, _wp_solve, _no_factors),
        Op("tf_weather", "tool_fact", _tf_weather_sample,
           lambda d, s: f"weather({_kb(d, s['e'], 'city')},{s['day']})", _no_factors),
        Op("tf_flight_from", "tool_fact", _tf_flight_sample,
           lambda d, s: f"flight({_kb(d, s['e'], 'city')},{s['c']})", _no_factors),
        Op("tf_flight_to", "tool_fact", _tf_flight_sample,
           lambda d, s: f"flight({s['c']},{_kb(d, s['e'], 'city')})", _no_factors),
        Op("tf_timer", "tool_fact", _tf_timer_sample,
           lambda d, s: f"timer({_kb(d, s['e'], 'age')},{s['unit']})", _no_factors),
        Op("fr_add", "format_result", _fr_sample(False), _fr_solve(False), _no_factors),
        Op("fr_sub", "format_result", _fr_sample(True), _fr_solve(True), _no_factors),
        Op("lt", "lookup_translate", kv_sample, _lt_solve, _no_factors),
        Op("ct", "code_tool", _ct_sample, _ct_solve, _no_factors),
        Op("fx_max", "fact_reason", _fx_sample, _fx_solve(0), _no_factors),
        Op("fx_min", "fact_reason", _fx_sample, _fx_solve(-1), _no_factors),
    )
}


def _expression(text: str) -> tuple[str, str, str]:
    """``"<a> <plus|minus> <b>"`` (a translated word problem) as its three words."""
    words = text.split(" ")
    if len(words) != 3 or words[1] not in OP_WORDS:
        raise ReadJaxError(f"{text!r} is not '<number> plus|minus <number>'")
    return words[0], words[1], words[2]


def _wp_compute(w: "World", s: Slots, a: list[str]) -> str:
    x, opw, y = _expression(a[0])
    return w.fill("ma.add.1" if opw == "plus" else "ma.sub.1", a=x, b=y)


def _wp_combine(w: "World", s: Slots, a: list[str]) -> str:
    x, opw, y = _expression(a[0])
    return f"{x}{'+' if opw == 'plus' else '-'}{y}={a[1]}" if w.config.scratchpad else a[1]


def _fact_then_tool(fact_template: str, tool_template: str, args: Callable[[Slots, str], dict]) -> ChainPlan:
    return ChainPlan((lambda w, s, a: w.fill(fact_template, e=s["e"]),
                      lambda w, s, a: w.fill(tool_template, **args(s, a[0]))), last_answer)


def _format_plan(sub: bool) -> ChainPlan:
    return ChainPlan((lambda w, s, a: w.fill("ma.sub.0" if sub else "ma.add.0", a=s["a"], b=s["b"]),
                      lambda w, s, a: w.fill("st.0", ops=s["ops"], w=a[0])), scratched)


def _reason_plan(which: int) -> ChainPlan:
    return ChainPlan((lambda w, s, a: w.fill("re.max.0" if which == 0 else "re.min.0", facts=s["facts"]),
                      lambda w, s, a: w.fill("gk.attr.0", attr=s["attr"], e=a[0])), scratched)


PLANS: dict[str, ChainPlan] = {
    "wp": ChainPlan((lambda w, s, a: w.fill("ml.en.0", text=f"{s['za']} {s['zop']} {s['zb']}"), _wp_compute),
                    _wp_combine),
    "tf_weather": _fact_then_tool("gk.city.0", "to.weather.0", lambda s, f: {"city": f, "day": s["day"]}),
    "tf_flight_from": _fact_then_tool("gk.city.0", "to.flight.0", lambda s, f: {"src": f, "dst": s["c"]}),
    "tf_flight_to": _fact_then_tool("gk.city.0", "to.flight.0", lambda s, f: {"src": s["c"], "dst": f}),
    "tf_timer": _fact_then_tool("gk.age.0", "to.timer.0", lambda s, f: {"n": f, "unit": s["unit"]}),
    "fr_add": _format_plan(False),
    "fr_sub": _format_plan(True),
    "lt": ChainPlan((lambda w, s, a: w.fill("lc.0", ctx=s["ctx"], k=s["k"]),
                     lambda w, s, a: w.fill("ml.zl.0", text=a[0])), scratched),
    "ct": ChainPlan((lambda w, s, a: w.fill("co.0", xs=s["xs"], expr=s["expr"]),
                     lambda w, s, a: w.fill("to.timer.0", n=a[0], unit=s["unit"])), last_answer),
    "fx_max": _reason_plan(0),
    "fx_min": _reason_plan(-1),
}


@dataclass(frozen=True)
class WorkloadSpec:
    """A task whose requests are single-capability examples, capability ~ ``requirement``."""

    name: str
    description: str
    input_format: str
    output_format: str
    requirement: Mapping[str, float]  # the world's true r and the request mix (normalised by the World)
    dev_seed: int
    test_seed: int


WORKLOAD_SPECS: tuple[WorkloadSpec, ...] = (
    WorkloadSpec(
        "dev_assistant",
        "A developer assistant's request queue: some requests ask for the value of a tiny list program,"
        " others ask for a structured tool call (timer, weather, flight, currency conversion).",
        "a list program to evaluate, or a request for a tool",
        "the program's value (e.g. 7 or [1,2,3]), or one tool call (e.g. timer(7,min))",
        {"code": 0.6, "tool_use": 0.4}, 2101, 2102,
    ),
    WorkloadSpec(
        "quiz_desk",
        "A quiz helper's request queue: arithmetic questions, comparisons between people of the"
        " knowledge base, and facts recalled about them.",
        "a sum or difference, a who-is-older style question, or a question about a person",
        "a number, a person's name, or a fact (city, colour, pet, age)",
        {"math": 0.5, "reasoning": 0.3, "general_knowledge": 0.2}, 2201, 2202,
    ),
)

__all__ = ["COMPOSITE_OPS", "PLANS", "ChainPlan", "TASK_SPECS", "TaskSpec", "WORKLOAD_SPECS", "WorkloadSpec"]
