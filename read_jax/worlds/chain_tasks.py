"""Chained tasks: composed requests answered as a chain of the world's capability requests.

Each chained task needs two capabilities in sequence: the second request is built from the
first one's answer (compute a sum, then set a timer for it; recall who is older, then a fact
about them).  A request is answered by asking the model each step as an ordinary capability
request (`read_jax.capabilities.chain`), so the task's utility is the chance that every step is
right: it rises with each component skill and saturates in each (a step that fails fails the
request whatever the other skills), and how distilling one capability moves the others is the
model's own, learned transfer.  The single-pass composite tasks (`read_jax.worlds.tasks`) need
the composite's own format too, which capability-only distillation wears away at this scale.

The steps are drawn from the ranges of the ``tiny`` preset's capabilities (the world of the
shipped teacher and student): single-digit arithmetic and depth-1 programs whose result a tool
argument (<= 20) can carry, the knowledge-base style of reasoning, and record lookups that name a
person.  (A steerability chain is missing: the preset formats only its 24 nouns, too few distinct
requests for a 64 + 128 example split.)  In other presets a step can fall outside its capability's range.
Chained tasks are never part of a training mixture, so adding them left every recipe's stream as
it was.
"""

from __future__ import annotations

from read_jax.errors import ReadJaxError
from read_jax.worlds.chain_plan import ChainPlan, last_answer, scratched
from read_jax.worlds.code_lang import _code_expr, _code_list, _fmt, eval_expr, parse_list
from read_jax.worlds.data import ATTRIBUTES, UNITS, WorldData
from read_jax.worlds.op_base import Op, Slots, _pick
from read_jax.worlds.ops import _age_pair_sample, _age_pick, _digits_pair
from read_jax.worlds.record_ops import RECORD_FIELDS, _record_sample, parse_ctx
from read_jax.worlds.tasks import TaskSpec, _scratch

_TRIES = 200

CHAIN_SPECS: tuple[TaskSpec, ...] = (
    TaskSpec(
        "sum_timer",
        "Set a timer for the sum or difference of two numbers: compute it, then call the timer tool"
        " with the result.",
        "timer for <a>+<b> <unit>  or  <unit> timer: <a>-<b>",
        "one tool call, e.g. timer(9,min)",
        {"math": 0.5, "tool_use": 0.5}, 3101, 3102,
    ),
    TaskSpec(
        "program_timer",
        "Evaluate a tiny list program (len, max, min, sum, indexing) to a number, then call the timer"
        " tool with that number.",
        "x=<list>: <expression> <unit> timer",
        "one tool call, e.g. timer(7,s)",
        {"code": 0.5, "tool_use": 0.5}, 3201, 3202,
    ),
    TaskSpec(
        "older_fact",
        "Decide which of two people of the knowledge base is older (or younger), then recall an"
        " attribute of that person (city, color, pet or age).",
        "<attribute> of the older of <x> and <y>?",
        "the person, '>', then the attribute value, e.g. zok>kopa",
        {"reasoning": 0.5, "general_knowledge": 0.5}, 3301, 3302,
    ),
    TaskSpec(
        "record_fact",
        "Read a record of named fields, take the person named in it, then recall an attribute of that"
        " person from the knowledge base.",
        "<field=value ...>. <attribute> of the name?",
        "the person, '>', then the attribute value, e.g. zok>37",
        {"long_context": 0.5, "general_knowledge": 0.5}, 3501, 3502,
    ),
)


def _value(sym: str, a: int, b: int) -> int:
    return a + b if sym == "+" else a - b


# ------------------------------------------------------------------ sum_timer
def _sum_timer_sample(d: WorldData, rng, fixed) -> Slots:
    for _ in range(_TRIES):
        a, b = _digits_pair(d, rng)
        sym = _pick(rng, ("+", "-"))
        if sym == "-":
            a, b = max(a, b), min(a, b)
        if _value(sym, a, b) <= d.config.tool_max_number:
            return {"a": str(a), "sym": sym, "b": str(b), "unit": _pick(rng, UNITS)}
    raise ReadJaxError("sum_timer: no sum within the timer's argument range")


def _sum_timer_solve(d: WorldData, s) -> str:
    return f"timer({_value(s['sym'], int(s['a']), int(s['b']))},{s['unit']})"


# ------------------------------------------------------------------ program_timer
def _program_timer_sample(d: WorldData, rng, fixed) -> Slots:
    for _ in range(_TRIES):
        xs = _code_list(d, rng)
        expr, _ = _code_expr(d, rng, len(xs), numeric_only=True)
        if eval_expr(expr, xs) <= d.config.tool_max_number:
            return {"xs": _fmt(xs), "expr": expr, "unit": _pick(rng, UNITS)}
    raise ReadJaxError("program_timer: no program value within the timer's argument range")


def _program_timer_solve(d: WorldData, s) -> str:
    return f"timer({eval_expr(s['expr'], parse_list(s['xs']))},{s['unit']})"


# ------------------------------------------------------------------ older_fact
def _older_fact_sample(d: WorldData, rng, fixed) -> Slots:
    return {**_age_pair_sample(d, rng, fixed), "attr": _pick(rng, ATTRIBUTES)}


def _older_fact_solve(older: bool):
    pick = _age_pick(older)

    def solve(d: WorldData, s) -> str:
        e = pick(d, s)
        return _scratch(d, e, d.kb[e][s["attr"]])

    return solve


# ------------------------------------------------------------------ record_fact
def _record_fact_sample(d: WorldData, rng, fixed) -> Slots:
    for _ in range(_TRIES):
        items = _record_sample(d, rng)["ctx"].split(" ")
        if "name" not in parse_ctx(" ".join(items)):
            continue
        attr = _pick(rng, ATTRIBUTES)  # the record never states the fact asked for
        kept = [item for item in items if not item.startswith(f"{attr}=")]
        if len(kept) >= min(d.config.lc_pairs[0], len(RECORD_FIELDS) - 1):  # as long as the preset's records
            return {"ctx": " ".join(kept), "attr": attr}
    raise ReadJaxError("record_fact: no record with a name field")


def _record_fact_solve(d: WorldData, s) -> str:
    e = parse_ctx(s["ctx"])["name"]
    return _scratch(d, e, d.kb[e][s["attr"]])


def _no_factors(d, s) -> dict[str, float]:
    return {}


CHAIN_OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Op("sum_timer", "sum_timer", _sum_timer_sample, _sum_timer_solve, _no_factors),
        Op("program_timer", "program_timer", _program_timer_sample, _program_timer_solve, _no_factors),
        Op("older_fact", "older_fact", _older_fact_sample, _older_fact_solve(True), _no_factors),
        Op("younger_fact", "older_fact", _older_fact_sample, _older_fact_solve(False), _no_factors),
        Op("record_fact", "record_fact", _record_fact_sample, _record_fact_solve, _no_factors),
    )
}


def _ask(op: str, step: int, **slots: str):
    """Step ``step`` as a request of ``op``: its template picked per request from the capability's own
    (`World.request`), keyed by the request's slots; ``slots`` map template slots to the request's slot
    names, to ``"@0"`` for the first step's answer, or to ``"=text"`` for the literal text."""
    def value(source: str, s: Slots, a: list[str]) -> str:
        if source.startswith("@"):
            return a[int(source[1:])]
        return source[1:] if source.startswith("=") else s[source]

    def build(w, s: Slots, a: list[str]) -> str:
        key = "|".join(f"{k}={v}" for k, v in sorted(s.items())) + f"|{step}"
        return w.request(op, key, **{k: value(v, s, a) for k, v in slots.items()})

    return build


def _sum_step(w, s: Slots, a: list[str]) -> str:
    return _ask("add" if s["sym"] == "+" else "sub", 0, a="a", b="b")(w, s, a)


_TIMER = _ask("tool_timer", 1, n="@0", unit="unit")
_ATTR_OF_ANSWER = _ask("fact", 1, attr="attr", e="@0")

CHAIN_PLANS: dict[str, ChainPlan] = {
    "sum_timer": ChainPlan((_sum_step, _TIMER), last_answer),
    "program_timer": ChainPlan((_ask("prog", 0, xs="xs", expr="expr"), _TIMER), last_answer),
    "older_fact": ChainPlan((_ask("rolder", 0, x="x", y="y"), _ATTR_OF_ANSWER), scratched),
    "younger_fact": ChainPlan((_ask("ryounger", 0, x="x", y="y"), _ATTR_OF_ANSWER), scratched),
    "record_fact": ChainPlan((_ask("kv", 0, ctx="ctx", k="=name"), _ATTR_OF_ANSWER), scratched),
}

__all__ = ["CHAIN_OPS", "CHAIN_PLANS", "CHAIN_SPECS"]
