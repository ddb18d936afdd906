"""Rationales: the worked step behind every capability answer (the CoT teacher signal).

Asked with `COT_MARK` in front of a capability prompt, the world's teacher answers
``"<rationale>; <answer>"``: the step a person would write before the answer (the formatting
ops applied one by one, the order a chain of facts implies, the ages or cities recalled, the
list a program's inner call returns, a tool call's arguments, a phrase translated word by word).
Asked without it, the teacher answers as before.  A student trained on rationales answers with
them too, so the world scores the *final* answer (`final_answer`): the text after the last
`RATIONALE_SEP`; no capability answer or composite answer contains that separator.

Each rationale is computed from the example's slots and the world's data, like the answer
itself, so a rationale is right exactly when the example is (the test suite checks every op has
one and that none contains the separator).
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

from read_jax.errors import ReadJaxError
from read_jax.worlds.code_lang import _fmt, eval_expr, parse_list
from read_jax.worlds.data import WorldData
from read_jax.worlds.ops import OPS, apply_steer, chain_order, order_ops
from read_jax.worlds.record_ops import TOOL_ARGS, parse_ctx

COT_MARK = "think: "  # prefixed to a capability prompt: answer with the rationale first
RATIONALE_SEP = "; "  # between the rationale and the answer

Rationale = Callable[[WorldData, Mapping[str, str]], str]


def final_answer(text: str) -> str:
    """The answer part of a generated text: after the last separator, or all of it without one."""
    return text.rsplit(RATIONALE_SEP.strip(), 1)[-1].strip()


def cot_prompt(prompt: str) -> str:
    """A capability prompt that asks the world's teacher for its rationale first."""
    return COT_MARK + prompt


def with_rationale(rationale: str, answer: str) -> str:
    return f"{rationale}{RATIONALE_SEP}{answer}"


def _steps(d: WorldData, s) -> str:
    word, out = s["w"], []
    for op in order_ops(s["ops"].split("+")):
        word = apply_steer(op, word)
        out.append(f"{op}>{word}")
    return " ".join(out)


def _chain(d: WorldData, s) -> str:
    return ">".join(chain_order(s["facts"]))


def _recall(attr: str) -> Rationale:
    def rationale(d: WorldData, s) -> str:
        return f"{s['x']} {d.kb[s['x']][attr]}, {s['y']} {d.kb[s['y']][attr]}"

    return rationale


def _arith(symbol: str) -> Rationale:
    def rationale(d: WorldData, s) -> str:
        return f"{s['a']}{symbol}{s['b']}"

    return rationale


def _program(d: WorldData, s) -> str:
    """The inner call's value for a nested expression; the substituted list for a flat one."""
    expr, xs = s["expr"], parse_list(s["xs"])
    for inner in ("sort(x)", "rev(x)"):
        if inner in expr and expr != inner:
            return f"{inner}={_fmt(eval_expr(inner, xs))}"
    if "+" in expr:
        left, right = expr.split("+")
        return f"{_fmt(eval_expr(left, xs))}+{_fmt(eval_expr(right, xs))}"
    return re.sub(r"\bx\b", s["xs"], expr)


def _tool_args(args: tuple[str, ...]) -> Rationale:
    def rationale(d: WorldData, s) -> str:
        return " ".join(f"{a}={s[a]}" for a in args)

    return rationale


def _lookup(d: WorldData, s) -> str:
    return f"{s['k']}={parse_ctx(s['ctx'])[s['k']]}"


def _word_by_word(direction: str) -> Rationale:
    def rationale(d: WorldData, s) -> str:
        words = s["text"].split(" ")
        translate = d.to_zl if direction == "zl" else d.to_en
        return " ".join(f"{w}={translate(w)}" for w in words)

    return rationale


RATIONALES: dict[str, Rationale] = {
    "fact": lambda d, s: f"{s['attr']} of {s['e']}",
    "steer": _steps,
    "rmax": _chain, "rmin": _chain, "rcmp": _chain,
    "rolder": _recall("age"), "ryounger": _recall("age"), "rsamecity": _recall("city"),
    "add": _arith("+"), "sub": _arith("-"), "mul": _arith("*"),
    "prog": _program,
    **{name: _tool_args(args) for name, args in TOOL_ARGS.items()},
    "kv": _lookup,
    "to_zl": _word_by_word("zl"), "to_en": _word_by_word("en"),
}


def rationale(d: WorldData, op: str, slots: Mapping[str, str]) -> str:
    """The rationale of one capability example (its op and slots)."""
    if op not in RATIONALES:
        raise ReadJaxError(f"op {op!r} has no rationale; capability ops: {sorted(OPS)}")
    return RATIONALES[op](d, slots)
