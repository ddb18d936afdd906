"""The code capability's tiny list-program language: its evaluator (`eval_expr`), list syntax
(`parse_list`, `_fmt`) and the generator of programs and lists the world's examples draw from."""

from __future__ import annotations

from read_jax.errors import ReadJaxError
from read_jax.worlds.data import WorldData
from read_jax.worlds.op_base import _pick

LIST_FNS = ("rev", "sort")
NUM_FNS = ("len", "max", "min", "sum")


def _fmt(v) -> str:
    return "[" + ",".join(str(x) for x in v) + "]" if isinstance(v, list) else str(v)


def eval_expr(expr: str, x: list[int]):
    """Evaluate the tiny list language: x, f(e) for f in rev/sort/len/max/min/sum, e[i], e+e."""
    pos = 0

    def peek():
        return expr[pos] if pos < len(expr) else ""

    def eat(tok: str):
        nonlocal pos
        if not expr.startswith(tok, pos):
            raise ReadJaxError(f"bad expression {expr!r} at {pos}: expected {tok!r}")
        pos += len(tok)

    def atom():
        nonlocal pos
        if peek() == "x":
            eat("x")
            v = list(x)
        else:
            for f in LIST_FNS + NUM_FNS:
                if expr.startswith(f + "(", pos):
                    eat(f + "(")
                    arg = sum_expr()
                    eat(")")
                    if not isinstance(arg, list):
                        raise ReadJaxError(f"{f} needs a list in {expr!r}")
                    v = {"rev": lambda a: a[::-1], "sort": sorted, "len": len, "max": max, "min": min,
                         "sum": sum}[f](arg)
                    break
            else:
                raise ReadJaxError(f"bad expression {expr!r} at {pos}")
        while peek() == "[":
            eat("[")
            start = pos
            while peek().isdigit():
                pos += 1
            if start == pos or not isinstance(v, list):
                raise ReadJaxError(f"bad index in {expr!r}")
            i = int(expr[start:pos])
            eat("]")
            if i >= len(v):
                raise ReadJaxError(f"index {i} out of range in {expr!r}")
            v = v[i]
        return v

    def sum_expr():
        v = atom()
        while peek() == "+":
            eat("+")
            w = atom()
            if isinstance(v, list) or isinstance(w, list):
                raise ReadJaxError(f"+ needs numbers in {expr!r}")
            v = v + w
        return v

    out = sum_expr()
    if pos != len(expr):
        raise ReadJaxError(f"trailing text in expression {expr!r}")
    return out


def _code_expr(d: WorldData, rng, n: int, numeric_only: bool = False) -> tuple[str, int]:
    depth = int(rng.integers(1, d.config.code_max_depth + 1))
    i, j = (int(v) for v in rng.integers(0, n, size=2))
    if depth == 1:
        pool = ["len(x)", "max(x)", "min(x)", "sum(x)", f"x[{i}]"] + ([] if numeric_only else ["rev(x)", "sort(x)"])
    else:
        pool = [f"sort(x)[{i}]", f"rev(x)[{i}]", f"x[{i}]+x[{j}]"] + ([] if numeric_only else ["rev(sort(x))"])
    return _pick(rng, pool), depth


def _code_list(d: WorldData, rng) -> list[int]:
    lo, hi = d.config.code_list_len
    return [int(v) for v in rng.integers(0, 10, size=int(rng.integers(lo, hi + 1)))]


def parse_list(xs: str) -> list[int]:
    inner = xs.strip()[1:-1]
    return [int(v) for v in inner.split(",")] if inner else []
