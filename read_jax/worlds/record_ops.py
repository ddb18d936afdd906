"""The tool_use and long_context ops: structured records -- a tool call's arguments, a context of
key=value fields -- built from the world's values, and read back (`parse_ctx`)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from read_jax.errors import ReadJaxError
from read_jax.worlds.data import COLORS, CURRENCIES, DAYS, NOUNS, PETS, UNITS, WorldData
from read_jax.worlds.op_base import Op, Slots, _pick, _span


# ============================================================ tool_use
def _tool_number(d: WorldData, rng) -> str:
    return str(int(rng.integers(1, d.config.tool_max_number + 1)))


def _tool(name: str, args: tuple[str, ...], sample_args: Callable[[WorldData, np.random.Generator], Slots]) -> Op:
    def sample(d, rng, fixed) -> Slots:
        return sample_args(d, rng)

    def solve(d, s) -> str:
        return f"{name}(" + ",".join(s[a] for a in args) + ")"

    def factors(d, s) -> dict[str, float]:
        digits = sum(len(s[a]) - 1 for a in args if s[a].isdigit())
        return {"args": 0.3 * (len(args) - 1), "digits": 0.2 * digits, "length": 0.02 * sum(len(s[a]) for a in args)}

    return Op(f"tool_{name}", "tool_use", sample, solve, factors)


def _two_cities(d, rng) -> tuple[str, str]:
    i, j = rng.permutation(len(d.cities))[:2]
    return d.cities[i], d.cities[j]


# ============================================================ long_context
RECORD_FIELDS = ("name", "city", "pet", "color", "age", "day")


def _record_sample(d: WorldData, rng) -> Slots:
    """A record of named fields in random order, each value drawn from its field's type."""
    lo, hi = d.config.lc_pairs
    n = min(int(rng.integers(lo, hi + 1)), len(RECORD_FIELDS))
    fields = [RECORD_FIELDS[i] for i in rng.permutation(len(RECORD_FIELDS))[:n]]
    pools = {"name": d.entities, "city": d.cities, "pet": PETS, "color": COLORS, "day": DAYS}
    values = [str(int(rng.integers(12, 90))) if f == "age" else _pick(rng, pools[f]) for f in fields]
    return {"ctx": " ".join(f"{f}={v}" for f, v in zip(fields, values)), "k": fields[int(rng.integers(n))]}


def _lc_sample(d: WorldData, rng, fixed) -> Slots:
    if d.config.lc_style == "fields":
        return _record_sample(d, rng)
    return kv_sample(d, rng, fixed)


def kv_sample(d: WorldData, rng, fixed) -> Slots:
    """Arbitrary keys (one or two letters) bound to distinct nouns: associative recall."""
    lo, hi = d.config.lc_pairs
    n = int(rng.integers(lo, hi + 1))
    letters = "abcdefghijklmnopqrstuvwxyz"
    target_pos = int(rng.integers(n))
    shared = rng.random() < 0.5  # distractor keys share the target key's first letter
    first = letters[int(rng.integers(26))]
    keys: list[str] = []
    while len(keys) < n:
        if d.config.lc_key_len == 1:
            k = letters[int(rng.integers(26))]
        else:
            a = first if (shared and rng.random() < 0.7) else letters[int(rng.integers(26))]
            k = a + letters[int(rng.integers(26))]
        if k not in keys:
            keys.append(k)
    values = [NOUNS[i] for i in rng.permutation(len(NOUNS))[:n]]
    ctx = " ".join(f"{k}={v}" for k, v in zip(keys, values))
    return {"ctx": ctx, "k": keys[target_pos]}


def parse_ctx(ctx: str) -> dict[str, str]:
    out = {}
    for item in ctx.split(" "):
        k, _, v = item.partition("=")
        if not k or not v or k in out:
            raise ReadJaxError(f"bad context {ctx!r}")
        out[k] = v
    return out


def _lc_solve(d, s) -> str:
    table = parse_ctx(s["ctx"])
    if s["k"] not in table:
        raise ReadJaxError(f"key {s['k']!r} not in context")
    return table[s["k"]]


def _lc_factors(d, s) -> dict[str, float]:
    lo, hi = d.config.lc_pairs
    table = parse_ctx(s["ctx"])
    keys = list(table)
    n = len(keys)
    same = sum(1 for k in keys if k != s["k"] and k[0] == s["k"][0])
    from_end = n - 1 - keys.index(s["k"])
    return {"pairs": 0.6 * _span(lo, hi, n), "distractors": 0.3 * same / max(n - 1, 1),
            "distance": 0.2 * from_end / max(hi - 1, 1)}


# ============================================================ the ops (`ops.OPS` registers them, in this order)
# each tool: its name, its arguments in call order, and how they are drawn
_TOOLS: tuple[tuple[str, tuple[str, ...], Callable[[WorldData, np.random.Generator], Slots]], ...] = (
    ("weather", ("city", "day"), lambda d, rng: {"city": _pick(rng, d.cities), "day": _pick(rng, DAYS)}),
    ("timer", ("n", "unit"), lambda d, rng: {"n": _tool_number(d, rng), "unit": _pick(rng, UNITS)}),
    ("flight", ("src", "dst"), lambda d, rng: dict(zip(("src", "dst"), _two_cities(d, rng)))),
    ("send", ("to", "msg"), lambda d, rng: {"to": _pick(rng, d.entities), "msg": _pick(rng, NOUNS)}),
    ("convert", ("n", "c1", "c2"), lambda d, rng: dict(
        zip(("n", "c1", "c2"), (_tool_number(d, rng), *[CURRENCIES[i] for i in rng.permutation(len(CURRENCIES))[:2]])))),
)
TOOL_OPS: tuple[Op, ...] = tuple(_tool(*tool) for tool in _TOOLS)
TOOL_ARGS: dict[str, tuple[str, ...]] = {f"tool_{name}": args for name, args, _ in _TOOLS}
LONG_CONTEXT_OP = Op("kv", "long_context", _lc_sample, _lc_solve, _lc_factors)
