"""Expressions and format strings of capability pack templates (`read_jax.capabilities.pack`).

A template's ``compute``, ``require`` and ``factors`` are small expressions (arithmetic,
comparisons, ``tag.field`` of the instance's pool records, a few functions such as ``digits``,
``draw('pool')``, ``coin()``), evaluated by walking a restricted Python AST (never `eval`), so a
pack file cannot run code; ``answer``, ``choices`` and ``info`` strings are format strings over
the same names.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import re
import string
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from read_jax.errors import ReadJaxError


# =========================================================================== expressions
class _Ctx:
    """What an expression can reach: the instance's names, its rng and the pack's pools."""

    def __init__(self, ns: dict[str, Any], rng: np.random.Generator, pools: Mapping[str, Sequence[dict]],
                 used: dict[str, set[int]]):
        self.ns, self.rng, self.pools, self.used = ns, rng, pools, used

    def draw(self, pool: str) -> dict[str, Any]:
        """A record of `pool` not yet drawn for this instance."""
        recs = self.pools[pool]
        taken = self.used.setdefault(pool, set())
        free = [i for i in range(len(recs)) if i not in taken]
        if not free:
            raise ReadJaxError(f"pool {pool!r} has too few records for distinct draws")
        i = free[int(self.rng.integers(len(free)))]
        taken.add(i)
        return recs[i]


def _digits(x: Any) -> int:
    return len(str(abs(int(x))))


def _lookup(ctx: _Ctx, pool: str, field: str, values: Any) -> list[dict[str, Any]]:
    """The records of `pool` whose `field` equals each of `values`, in that order."""
    index = {r.get(field): r for r in ctx.pools[pool]}
    return [index[v] for v in (values if isinstance(values, list) else [values])]


_FUNCS: dict[str, Callable[..., Any]] = {
    "min": min, "max": max, "abs": abs, "len": len, "int": int, "str": str, "sum": sum, "sorted": sorted,
    "gcd": math.gcd, "lcm": math.lcm, "digits": _digits, "words": lambda s: len(str(s).split()),
    "json": lambda x: json.dumps(x, ensure_ascii=False),
    "join": lambda sep, xs: sep.join(as_text(x) for x in xs),
    "lines": lambda xs: "\n".join(as_text(x) for x in xs),
}
_CTX_FUNCS: dict[str, Callable[..., Any]] = {
    "draw": lambda ctx, pool: ctx.draw(pool),
    "coin": lambda ctx: bool(ctx.rng.integers(2)),
    "randint": lambda ctx, lo, hi: int(ctx.rng.integers(lo, hi + 1)),
    "lookup": _lookup,
}
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: Fraction(a) / Fraction(b), ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a ** b if abs(b) <= 64 else _fail("exponent too large"),
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}


def _fail(msg: str) -> Any:
    raise ReadJaxError(msg)


@functools.lru_cache(maxsize=4096)
def _parse_expr(src: str) -> ast.expression:
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as err:
        raise ReadJaxError(f"bad expression {src!r}: {err.msg}") from None
    for node in ast.walk(tree):
        ok = isinstance(node, (ast.Expression, ast.Constant, ast.Name, ast.Attribute, ast.Subscript, ast.BinOp,
                               ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call, ast.List, ast.Tuple,
                               ast.Dict, ast.Load, ast.operator, ast.unaryop, ast.boolop, ast.cmpop))
        if not ok or (isinstance(node, ast.BinOp) and type(node.op) not in _BINOPS) or \
                (isinstance(node, ast.Call) and (not isinstance(node.func, ast.Name) or node.keywords
                                                 or node.func.id not in {**_FUNCS, **_CTX_FUNCS})) or \
                (isinstance(node, ast.UnaryOp) and not isinstance(node.op, (ast.USub, ast.UAdd, ast.Not))):
            raise ReadJaxError(f"expression {src!r}: {type(node).__name__} is not allowed")
    return tree


def evaluate(src: str, ctx: _Ctx) -> Any:
    """Value of a pack expression (see the module docstring) in an instance's context."""
    return _eval(_parse_expr(src).body, ctx)


def _eval(node: ast.AST, ctx: _Ctx) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in ctx.ns:
            raise ReadJaxError(f"unknown name {node.id!r}")
        return ctx.ns[node.id]
    if isinstance(node, ast.Attribute):
        rec = _eval(node.value, ctx)
        if not isinstance(rec, Mapping) or node.attr not in rec:
            raise ReadJaxError(f"no field {node.attr!r} in {ast.unparse(node.value)}")
        return rec[node.attr]
    if isinstance(node, ast.Subscript):
        return _eval(node.value, ctx)[_eval(node.slice, ctx)]
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_eval(node.left, ctx), _eval(node.right, ctx))
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, ctx)
        return -v if isinstance(node.op, ast.USub) else (not v) if isinstance(node.op, ast.Not) else +v
    if isinstance(node, ast.BoolOp):
        vals = (_eval(v, ctx) for v in node.values)
        return all(vals) if isinstance(node.op, ast.And) else any(vals)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, ctx)
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, ctx)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body, ctx) if _eval(node.test, ctx) else _eval(node.orelse, ctx)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, ctx) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_eval(k, ctx): _eval(v, ctx) for k, v in zip(node.keys, node.values)}
    assert isinstance(node, ast.Call)  # the parser admits nothing else
    args = [_eval(a, ctx) for a in node.args]
    if node.func.id in _CTX_FUNCS:
        return _CTX_FUNCS[node.func.id](ctx, *args)
    return _FUNCS[node.func.id](*args)


def as_text(value: Any) -> str:
    """How a value is written into a prompt or answer: exact decimals, JSON for containers."""
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        den, twos, fives = value.denominator, 0, 0
        while den % 2 == 0:
            den, twos = den // 2, twos + 1
        while den % 5 == 0:
            den, fives = den // 5, fives + 1
        if den != 1:
            raise ReadJaxError(f"{value} has no exact decimal form")
        places = max(twos, fives)
        digits = str(abs(value.numerator) * 10 ** places // value.denominator).rjust(places + 1, "0")
        return f"{'-' if value < 0 else ''}{digits[:-places]}.{digits[-places:]}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class _Formatter(string.Formatter):
    """`{name}` / `{tag.field}` over an instance's names (records are dicts, not objects)."""

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[Any, str]:
        return _resolve(field_name, kwargs), field_name

    def format_field(self, value: Any, format_spec: str) -> str:
        return format(value, format_spec) if format_spec else as_text(value)


_FMT = _Formatter()
_WHOLE = re.compile(r"^\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\}$")


def _resolve(name: str, ns: Mapping[str, Any]) -> Any:
    head, _, field = name.partition(".")
    if head not in ns:
        raise ReadJaxError(f"unknown name {head!r}")
    value = ns[head]
    if field:
        if not isinstance(value, Mapping) or field not in value:
            raise ReadJaxError(f"no field {field!r} in {head}")
        value = value[field]
    return value


def render(obj: Any, ns: Mapping[str, Any]) -> Any:
    """Format strings inside a JSON value; a string that is exactly one placeholder keeps its value's type."""
    if isinstance(obj, str):
        m = _WHOLE.match(obj)
        return _resolve(m.group(1), ns) if m else _FMT.vformat(obj, (), ns)
    if isinstance(obj, list):
        return [render(x, ns) for x in obj]
    if isinstance(obj, dict):
        return {k: render(v, ns) for k, v in obj.items()}
    return obj


def _format_fields(fmt: str) -> list[str]:
    try:
        return [f for _, f, _, _ in string.Formatter().parse(fmt) if f]
    except ValueError as err:
        raise ReadJaxError(f"bad format string {fmt!r}: {err}") from None


def _strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, list):
        for x in obj:
            yield from _strings(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _strings(x)


