"""Generators, solvers and difficulty factors of the world's capabilities.

An op is the semantic family behind one or more templates.  For every op:

- `sample(data, rng, fixed) -> slots`  draws typed slot values (strings) from a seed;
- `solve(data, slots) -> answer`       is a pure function of the slot values, so a
  prompt parsed back into slots (Template.parse) can be solved without any hidden state;
- `factors(data, slots) -> {name: x}`  capability-specific difficulty factors; their sum
  (plus the template's `bonus`) is the raw difficulty that `DifficultyScale` normalises.

`Op` and the drawing helpers are in `op_base`, the code capability's list language in
`code_lang`, the tool_use and long_context ops in `record_ops`; `OPS` registers them all.
"""

from __future__ import annotations

from typing import Callable, Mapping

from read_jax.errors import ReadJaxError
from read_jax.worlds.code_lang import LIST_FNS, NUM_FNS, _code_expr, _code_list, _fmt, eval_expr, parse_list
from read_jax.worlds.data import ATTRIBUTES, NOUNS, OP_WORDS, STEER_OPS, WorldData
from read_jax.worlds.op_base import Op, Slots, _number, _pick, _span
from read_jax.worlds.record_ops import LONG_CONTEXT_OP, RECORD_FIELDS, TOOL_OPS, kv_sample, parse_ctx


# ============================================================ general_knowledge
def _gk_sample(d: WorldData, rng, fixed) -> Slots:
    e = d.entities[int(rng.choice(len(d.entities), p=d.entity_p))]
    return {"e": e, "attr": fixed.get("attr") or _pick(rng, ATTRIBUTES)}


def _gk_solve(d: WorldData, s) -> str:
    try:
        return d.kb[s["e"]][s["attr"]]
    except KeyError:
        raise ReadJaxError(f"unknown entity/attribute {s['e']!r}/{s['attr']!r}") from None


def _gk_factors(d: WorldData, s) -> dict[str, float]:
    n = len(d.entities)
    return {"rarity": d.rank[s["e"]] / max(n - 1, 1),
            "attribute": {"color": 0.0, "pet": 0.15, "city": 0.3, "age": 0.55}[s["attr"]]}


# ============================================================ steerability
def apply_steer(op: str, w: str) -> str:
    if op == "upper":
        return w.upper()
    if op == "rev":
        return w[::-1]
    if op == "wrap":
        return f"[{w}]"
    if op == "twice":
        return w + w
    raise ReadJaxError(f"unknown formatting op {op!r}")


def order_ops(ops: list[str]) -> list[str]:
    """Keep `wrap` after `rev` (reversing "[ab]" would give "]ba[")."""
    if "wrap" in ops and "rev" in ops and ops.index("wrap") < ops.index("rev"):
        i, j = ops.index("wrap"), ops.index("rev")
        ops[i], ops[j] = ops[j], ops[i]
    return ops


def _steer_sample(d: WorldData, rng, fixed) -> Slots:
    c = d.config
    n_ops = int(rng.integers(1, c.steer_max_ops + 1))
    ops = order_ops([STEER_OPS[i] for i in rng.permutation(len(STEER_OPS))[:n_ops]])
    if c.steer_words == "nouns":
        w = _pick(rng, NOUNS)
    else:
        length = int(rng.integers(c.steer_word_len[0], c.steer_word_len[1] + 1))
        alphabet = "abcdefghijklmnopqrstuvwxyz" + ("0123456789" if rng.random() < 0.2 else "")
        w = "".join(alphabet[int(rng.integers(len(alphabet)))] for _ in range(length))
    return {"ops": "+".join(ops), "w": w}


def _steer_solve(d: WorldData, s) -> str:
    out = s["w"]
    for op in s["ops"].split("+"):
        out = apply_steer(op, out)
    return out


def _steer_factors(d: WorldData, s) -> dict[str, float]:
    c = d.config
    ops = s["ops"].split("+")
    lo, hi = c.steer_word_len
    return {"n_ops": 0.6 * (len(ops) - 1),
            "length": 0.5 * _span(lo, hi, min(max(len(s["w"]), lo), hi)),
            "op_kind": sum({"upper": 0.0, "wrap": 0.05, "twice": 0.2, "rev": 0.4}[o] for o in ops)}


# ============================================================ reasoning
def _chain_sample(d: WorldData, rng) -> tuple[list[str], list[str]]:
    lo, hi = d.config.reasoning_items
    k = int(rng.integers(lo, hi + 1))
    order = [d.entities[i] for i in rng.permutation(len(d.entities))[:k]]
    facts = [f"{order[i]}>{order[i + 1]}" for i in range(k - 1)]
    facts = [facts[i] for i in rng.permutation(len(facts))]
    return order, facts


def chain_order(facts: str) -> list[str]:
    """Total order (greatest first) implied by 'a>b, b>c' facts; error unless it is one chain."""
    pairs = [f.split(">") for f in facts.split(", ")]
    if any(len(p) != 2 for p in pairs):
        raise ReadJaxError(f"malformed facts {facts!r}")
    nxt = {a: b for a, b in pairs}
    rights = {b for _, b in pairs}
    heads = [a for a, _ in pairs if a not in rights]
    if len(heads) != 1 or len(nxt) != len(pairs):
        raise ReadJaxError(f"facts {facts!r} do not form one chain")
    order = [heads[0]]
    while order[-1] in nxt:
        order.append(nxt[order[-1]])
    if len(order) != len(pairs) + 1:
        raise ReadJaxError(f"facts {facts!r} do not form one chain")
    return order


def _inversions(facts: str) -> float:
    order = chain_order(facts)
    pos = [order.index(f.split(">")[0]) for f in facts.split(", ")]
    n = len(pos)
    if n < 2:
        return 0.0
    inv = sum(1 for i in range(n) for j in range(i + 1, n) if pos[i] > pos[j])
    return inv / (n * (n - 1) / 2)


def _reason_factors(d: WorldData, s, extra: float = 0.0) -> dict[str, float]:
    lo, hi = d.config.reasoning_items
    k = len(s["facts"].split(", ")) + 1
    return {"items": 0.6 * _span(lo, hi, k), "scramble": 0.4 * _inversions(s["facts"]), "question": extra}


def _rmax_sample(d, rng, fixed) -> Slots:
    _, facts = _chain_sample(d, rng)
    return {"facts": ", ".join(facts)}


def _rcmp_sample(d, rng, fixed) -> Slots:
    order, facts = _chain_sample(d, rng)
    i, j = rng.permutation(len(order))[:2]
    return {"facts": ", ".join(facts), "x": order[i], "y": order[j]}


def _rcmp_solve(d, s) -> str:
    order = chain_order(s["facts"])
    if s["x"] not in order or s["y"] not in order or s["x"] == s["y"]:
        raise ReadJaxError("comparison items must be two distinct chain members")
    return "yes" if order.index(s["x"]) < order.index(s["y"]) else "no"


def _rcmp_factors(d, s) -> dict[str, float]:
    order = chain_order(s["facts"])
    hops = abs(order.index(s["x"]) - order.index(s["y"]))
    return _reason_factors(d, s, 0.2 + 0.15 * (hops - 1))


# ------------------------------------------------------------ reasoning over the knowledge base
def _two_entities(d: WorldData, rng) -> tuple[str, str]:
    i, j = rng.choice(len(d.entities), size=2, replace=False, p=None)
    return d.entities[int(i)], d.entities[int(j)]


def _age_pair_sample(d: WorldData, rng, fixed) -> Slots:
    for _ in range(100):
        x, y = _two_entities(d, rng)
        if d.kb[x]["age"] != d.kb[y]["age"]:
            return {"x": x, "y": y}
    raise ReadJaxError("no two entities with different ages")


def _age_pick(older: bool):
    def solve(d: WorldData, s) -> str:
        ax, ay = int(_gk_solve(d, {"e": s["x"], "attr": "age"})), int(_gk_solve(d, {"e": s["y"], "attr": "age"}))
        if ax == ay or s["x"] == s["y"]:
            raise ReadJaxError(f"{s['x']} and {s['y']} have the same age")
        return s["x"] if (ax > ay) == older else s["y"]

    return solve


def _same_city_sample(d: WorldData, rng, fixed) -> Slots:
    x, y = _two_entities(d, rng)
    mates = [e for e in d.entities if e != x and d.kb[e]["city"] == d.kb[x]["city"]]
    if mates and rng.random() < 0.5:  # half the questions have the answer yes (when x has a neighbour)
        y = mates[int(rng.integers(len(mates)))]
    return {"x": x, "y": y}


def _same_city_solve(d: WorldData, s) -> str:
    if s["x"] == s["y"]:
        raise ReadJaxError("the two entities must differ")
    same = _gk_solve(d, {"e": s["x"], "attr": "city"}) == _gk_solve(d, {"e": s["y"], "attr": "city"})
    return "yes" if same else "no"


def _kb_reason_factors(question: float):
    def factors(d: WorldData, s) -> dict[str, float]:
        n = len(d.entities)
        rarity = (d.rank[s["x"]] + d.rank[s["y"]]) / max(2 * (n - 1), 1)
        gap = 0.0
        if question < 0.3:  # age comparisons: close ages are harder
            gap = 0.3 * max(0.0, 1.0 - abs(int(d.kb[s["x"]]["age"]) - int(d.kb[s["y"]]["age"])) / 40)
        return {"rarity": 0.6 * rarity, "gap": gap, "question": question}

    return factors


# ============================================================ math
def _digits_pair(d: WorldData, rng) -> tuple[int, int]:
    m = d.config.math_max_digits
    return _number(rng, int(rng.integers(1, m + 1))), _number(rng, int(rng.integers(1, m + 1)))


def _carries(a: int, b: int, sub: bool = False) -> int:
    n, carry = 0, 0
    while a or b:
        x, y = a % 10, b % 10
        if sub:
            carry = 1 if x - y - carry < 0 else 0
        else:
            carry = 1 if x + y + carry >= 10 else 0
        n += carry
        a //= 10
        b //= 10
    return n


def _add_sample(d, rng, fixed) -> Slots:
    a, b = _digits_pair(d, rng)
    return {"a": str(a), "b": str(b)}


def _sub_sample(d, rng, fixed) -> Slots:
    a, b = _digits_pair(d, rng)
    a, b = max(a, b), min(a, b)
    return {"a": str(a), "b": str(b)}


def _mul_sample(d, rng, fixed) -> Slots:
    return {"a": str(int(rng.integers(0, 10))), "b": str(int(rng.integers(0, 10)))}


def _arith(op: str) -> Callable[[WorldData, Mapping[str, str]], str]:
    def solve(d, s) -> str:
        a, b = int(s["a"]), int(s["b"])
        if op == "sub" and b > a:
            raise ReadJaxError("subtraction results are non-negative in this world")
        return str(a + b if op == "add" else a - b if op == "sub" else a * b)

    return solve


def _arith_factors(op: str):
    def factors(d, s) -> dict[str, float]:
        a, b = int(s["a"]), int(s["b"])
        m = d.config.math_max_digits
        digits = (len(str(a)) + len(str(b)) - 2) / max(2 * m - 2, 1)
        if op == "mul":
            return {"digits": 0.0, "carries": 0.3 * (a * b >= 10), "op": 0.25 + 0.02 * (a + b)}
        return {"digits": 0.6 * digits, "carries": 0.3 * _carries(a, b, op == "sub"),
                "op": 0.1 if op == "sub" else 0.0}

    return factors


# ============================================================ code
def _code_sample(d, rng, fixed) -> Slots:
    xs = _code_list(d, rng)
    expr, _ = _code_expr(d, rng, len(xs))
    return {"xs": _fmt(xs), "expr": expr}


def _code_solve(d, s) -> str:
    return _fmt(eval_expr(s["expr"], parse_list(s["xs"])))


def _code_factors(d, s) -> dict[str, float]:
    lo, hi = d.config.code_list_len
    n = len(parse_list(s["xs"]))
    e = s["expr"]
    depth = min(e.count("(") + e.count("[") + e.count("+"), 2)
    kind = 0.3 if ("sort" in e or "sum" in e) else 0.2 if "rev" in e else 0.1 if ("max" in e or "min" in e) else 0.0
    return {"length": 0.5 * _span(lo, hi, n), "depth": 0.5 * (depth - 1), "op": kind}


# ============================================================ multilingual
def _ml_phrase(d: WorldData, rng) -> str:
    lo, hi = d.config.ml_items
    k = int(rng.integers(lo, hi + 1))
    words = []
    for _ in range(k):
        u = rng.random()
        if u < d.config.ml_numeral_prob:
            words.append(str(_number(rng, int(rng.integers(1, d.config.math_max_digits + 1)))))
        elif u < d.config.ml_numeral_prob + 0.1:
            words.append(_pick(rng, OP_WORDS))
        else:
            words.append(_pick(rng, NOUNS))
    return " ".join(words)


def _ml_sample(direction: str):
    def sample(d, rng, fixed) -> Slots:
        en = _ml_phrase(d, rng)
        return {"text": en if direction == "zl" else d.to_zl(en)}

    return sample


def _ml_solve(direction: str):
    def solve(d, s) -> str:
        try:
            return d.to_zl(s["text"]) if direction == "zl" else d.to_en(s["text"])
        except KeyError as err:
            raise ReadJaxError(f"word {err} is not in the lexicon") from None

    return solve


def _ml_factors(direction: str):
    def factors(d, s) -> dict[str, float]:
        lo, hi = d.config.ml_items
        en = s["text"] if direction == "zl" else d.to_en(s["text"])
        words = en.split(" ")
        nums = [w for w in words if w.isdigit()]
        return {"words": 0.6 * _span(lo, hi, len(words)), "numerals": 0.1 * len(nums) + 0.1 * sum(len(n) - 1 for n in nums),
                "direction": 0.1 if direction == "en" else 0.0}

    return factors


# ============================================================ registry
OPS: dict[str, Op] = {}


def _register(op: Op) -> None:
    if op.name in OPS:
        raise ReadJaxError(f"duplicate op {op.name!r}")
    OPS[op.name] = op


_register(Op("fact", "general_knowledge", _gk_sample, _gk_solve, _gk_factors))
_register(Op("steer", "steerability", _steer_sample, _steer_solve, _steer_factors))
_register(Op("rmax", "reasoning", _rmax_sample, lambda d, s: chain_order(s["facts"])[0],
             lambda d, s: _reason_factors(d, s, 0.0)))
_register(Op("rmin", "reasoning", _rmax_sample, lambda d, s: chain_order(s["facts"])[-1],
             lambda d, s: _reason_factors(d, s, 0.1)))
_register(Op("rcmp", "reasoning", _rcmp_sample, _rcmp_solve, _rcmp_factors))
_register(Op("rolder", "reasoning", _age_pair_sample, _age_pick(older=True), _kb_reason_factors(0.0)))
_register(Op("ryounger", "reasoning", _age_pair_sample, _age_pick(older=False), _kb_reason_factors(0.1)))
_register(Op("rsamecity", "reasoning", _same_city_sample, _same_city_solve, _kb_reason_factors(0.35)))
for _op, _sampler in (("add", _add_sample), ("sub", _sub_sample), ("mul", _mul_sample)):
    _register(Op(_op, "math", _sampler, _arith(_op), _arith_factors(_op)))
_register(Op("prog", "code", _code_sample, _code_solve, _code_factors))
for _tool_op in TOOL_OPS:
    _register(_tool_op)
_register(LONG_CONTEXT_OP)
for _dir in ("zl", "en"):
    _register(Op(f"to_{_dir}", "multilingual", _ml_sample(_dir), _ml_solve(_dir), _ml_factors(_dir)))


__all__ = ["LIST_FNS", "NUM_FNS", "OPS", "RECORD_FIELDS", "Op", "Slots", "apply_steer", "chain_order", "eval_expr",
           "kv_sample", "order_ops", "parse_ctx", "parse_list"]
