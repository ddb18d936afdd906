"""Task metrics, by name (a task card's ``eval_type``).

A `Metric` scores one item in [0, 1], in one of two ways (``kind``):

- ``"generate"``: ``score(completion, example)`` scores the model's greedy completion;
- ``"choice"``: ``score_choices(logliks, n_tokens, example)`` scores the summed log-likelihood
  the model gives each of ``example.choices`` (and their token counts).

What each metric reads from an `Example` (a missing or malformed field is a
`ReadJaxError` naming the item and the field -- bad benchmark data, not a wrong answer):

==========================  ======================================================
``exact_match``             ``answer`` (whitespace-normalised string equality)
``numeric_exact``           ``answer``: a number, or a GSM8K solution ending ``#### N``
``mc_loglik[_norm]``        ``choices``, ``info["gold"]`` (choice kind)
``choice_letter``           ``choices``, ``info["gold"]``
``pass_at_1``               ``info["entry_point"]``, ``info["test"]``, ``info["code_prompt"]``
``instruction_following``   ``info["instructions"]`` (see `INSTRUCTION_CHECKS`)
``tool_call``               ``answer``: JSON ``{"name": ..., "arguments": {...}}``
``per_item``                ``info["eval_type"]``: the generate metric for this item
==========================  ======================================================

The module stays light (no jax): `read_jax.capabilities.registry` imports it to validate
task cards.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from read_jax.capabilities.registry import Example, exact_match
from read_jax.errors import ReadJaxError
from read_jax.evals.extract import (
    PARSE_ERRORS,
    extract_choice_letter,
    extract_code,
    extract_json,
    extract_number,
    parse_whole_json,
)

DEFAULT_CODE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Literal["generate", "choice"]
    fn: Callable[..., float]

    def score(self, completion: str, example: Example) -> float:
        if self.kind != "generate":
            raise ReadJaxError(f"metric {self.name!r} scores choices, not a completion")
        return float(self.fn(completion, example))

    def score_choices(self, logliks: Sequence[float], n_tokens: Sequence[int], example: Example) -> float:
        if self.kind != "choice":
            raise ReadJaxError(f"metric {self.name!r} scores a completion, not choices")
        return float(self.fn(logliks, n_tokens, example))


def _info(example: Example, key: str, metric: str) -> Any:
    """``example.info[key]``, or a one-line error naming the item, the field and the metric."""
    if key not in example.info:
        raise ReadJaxError(f"{metric}: item {example.id!r} has no info[{key!r}]")
    return example.info[key]


# --------------------------------------------------------------------------- numbers, letters
def numeric_exact(completion: str, example: Example) -> float:
    """1.0 when the completion's final number equals the gold number (``3.0`` == ``3``)."""
    gold = extract_number(example.answer)
    if gold is None:
        raise ReadJaxError(f"numeric_exact: item {example.id!r} answer {example.answer[-40:]!r} has no number")
    return float(extract_number(completion) == gold)


def _gold_index(example: Example, metric: str) -> int:
    gold = _info(example, "gold", metric)
    n = len(example.choices)
    if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < n:
        raise ReadJaxError(f"{metric}: item {example.id!r} info['gold']={gold!r} is not an index into {n} choices")
    return gold


def choice_letter(completion: str, example: Example) -> float:
    """1.0 when the option letter in the completion is the gold choice's."""
    return float(extract_choice_letter(completion, len(example.choices)) == _gold_index(example, "choice_letter"))


def _argmax_choice(scores: Sequence[float]) -> int:
    """Index of the largest score; ties go to the lowest index, NaN never wins."""
    best, best_score = 0, -math.inf
    for i, s in enumerate(scores):
        if not math.isnan(s) and s > best_score:
            best, best_score = i, s
    return best


def _mc(normalise: bool) -> Callable[[Sequence[float], Sequence[int], Example], float]:
    name = "mc_loglik_norm" if normalise else "mc_loglik"

    def score(logliks: Sequence[float], n_tokens: Sequence[int], example: Example) -> float:
        n = len(example.choices)
        if len(logliks) != n or len(n_tokens) != n:
            raise ReadJaxError(
                f"{name}: item {example.id!r} has {n} choices but {len(logliks)} log-likelihoods"
                f" and {len(n_tokens)} token counts"
            )
        if normalise and any(t <= 0 for t in n_tokens):
            raise ReadJaxError(f"{name}: item {example.id!r} has a choice of {min(n_tokens)} tokens")
        scores = [float(ll) / t for ll, t in zip(logliks, n_tokens)] if normalise else [float(x) for x in logliks]
        return float(_argmax_choice(scores) == _gold_index(example, name))

    return score


# --------------------------------------------------------------------------- code
def _top_level_imports(code: str) -> str:
    """The top-level import statements of `code` (none if it does not parse)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, *PARSE_ERRORS):
        return ""
    nodes = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return "\n".join(ast.get_source_segment(code, n) or "" for n in nodes)


def build_program(completion: str, example: Example) -> str:
    """The HumanEval-style program pass@1 runs: solution, the item's tests, ``check(entry_point)``.

    A completion that defines ``def {entry_point}`` is a whole solution; it gets the code
    prompt's import lines (models often restate the function without ``from typing import
    List``).  Anything else is a function body and is appended to the code prompt.
    """
    entry = str(_info(example, "entry_point", "pass_at_1"))
    test = str(_info(example, "test", "pass_at_1"))
    prompt = str(_info(example, "code_prompt", "pass_at_1"))
    code = extract_code(completion)
    if re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", code, re.MULTILINE):
        imports = _top_level_imports(prompt)
        solution = f"{imports}\n{code}" if imports else code
    else:
        solution = prompt + code
    return f"{solution}\n\n{test}\n\ncheck({entry})\n"


def pass_at_1(completion: str, example: Example) -> float:
    """1.0 iff the program (see `build_program`) exits 0 in the sandbox within the time limit
    (``info["timeout_s"]``, default `DEFAULT_CODE_TIMEOUT_S`)."""
    from read_jax.evals.sandbox import run_python  # subprocess machinery only when code is scored

    timeout = float(example.info.get("timeout_s", DEFAULT_CODE_TIMEOUT_S))
    return float(run_python(build_program(completion, example), timeout_s=timeout).passed)


# --------------------------------------------------------------------------- instructions
_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")
_BULLET = re.compile(r"^\s*[*\-\u2022]\s+\S", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _count_sentences(text: str) -> int:
    return sum(1 for part in _SENTENCE_END.split(text) if _WORD.search(part))


def _has_word(text: str, word: str) -> bool:
    """Whole-word (or whole-phrase), case-insensitive occurrence."""
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE) is not None


def _json_object(text: str, keys: Sequence[str] = ()) -> bool:
    """The whole response (optionally one fenced block) is a JSON object with `keys`."""
    ok, value = parse_whole_json(text)
    return ok and isinstance(value, dict) and all(k in value for k in keys)


_COUNT = {"n": (int, True)}
_WORD_LIST = {"words": (list, True)}
_TEXT = {"text": (str, True)}

# IFEval-style checks: type -> ({kwarg: (type, required)}, check(response, **kwargs) -> bool).
# Words are \w+ runs (with inner ' or -); word and phrase matches are whole-word and
# case-insensitive, as are starts_with/ends_with (after stripping whitespace);
# lowercase/uppercase need at least one letter; a bullet is a line starting "* ", "- " or "• ".
INSTRUCTION_CHECKS: dict[str, tuple[dict[str, tuple[type, bool]], Callable[..., bool]]] = {
    "min_words": (_COUNT, lambda t, n: len(_words(t)) >= n),
    "max_words": (_COUNT, lambda t, n: len(_words(t)) <= n),
    "exact_words": (_COUNT, lambda t, n: len(_words(t)) == n),
    "json_object": ({"keys": (list, False)}, _json_object),
    "required_words": (_WORD_LIST, lambda t, words: all(_has_word(t, w) for w in words)),
    "forbidden_words": (_WORD_LIST, lambda t, words: not any(_has_word(t, w) for w in words)),
    "lowercase": ({}, lambda t: t == t.lower() and any(c.isalpha() for c in t)),
    "uppercase": ({}, lambda t: t == t.upper() and any(c.isalpha() for c in t)),
    "num_bullets": (_COUNT, lambda t, n: len(_BULLET.findall(t)) == n),
    "starts_with": (_TEXT, lambda t, text: t.strip().lower().startswith(text.strip().lower())),
    "ends_with": (_TEXT, lambda t, text: t.strip().lower().endswith(text.strip().lower())),
    "num_sentences_max": (_COUNT, lambda t, n: _count_sentences(t) <= n),
}


def _instructions(example: Example, metric: str) -> list[tuple[Callable[..., bool], dict[str, Any]]]:
    """Validated (check, kwargs) pairs: unknown types and missing, extra or mistyped kwargs fail loudly."""
    raw = _info(example, "instructions", metric)
    where = f"{metric}: item {example.id!r}"
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise ReadJaxError(f"{where} info['instructions'] must be a non-empty list")
    out = []
    for spec in raw:
        if not isinstance(spec, Mapping) or "type" not in spec:
            raise ReadJaxError(f"{where} instruction {spec!r} has no 'type'")
        kind = spec["type"]
        if kind not in INSTRUCTION_CHECKS:
            raise ReadJaxError(f"{where} unknown instruction type {kind!r}; known: {', '.join(INSTRUCTION_CHECKS)}")
        schema, check = INSTRUCTION_CHECKS[kind]
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        for key, (typ, required) in schema.items():
            if key not in kwargs and required:
                raise ReadJaxError(f"{where} instruction {kind!r} needs {key!r}")
            value = kwargs.get(key)
            if key in kwargs and (not isinstance(value, typ) or isinstance(value, bool)):
                raise ReadJaxError(f"{where} instruction {kind!r}: {key!r} must be a {typ.__name__}, got {value!r}")
        extra = sorted(set(kwargs) - set(schema))
        if extra:
            raise ReadJaxError(f"{where} instruction {kind!r}: unexpected {', '.join(extra)}")
        out.append((check, kwargs))
    return out


def _instruction_following(strict: bool) -> Callable[[str, Example], float]:
    name = "instruction_following" if strict else "instruction_following_loose"

    def score(completion: str, example: Example) -> float:
        checks = _instructions(example, name)
        if not completion.strip():  # every instruction presumes a response
            return 0.0
        passed = [bool(check(completion, **kwargs)) for check, kwargs in checks]
        return float(all(passed)) if strict else sum(passed) / len(passed)

    return score


# --------------------------------------------------------------------------- tool calls
def _canonical(value: Any) -> Any:
    """A JSON value in a form where ``==`` means "same JSON": 3 == 3.0, but true != 1 and "3" != 3."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_canonical(v) for v in value))
    if isinstance(value, Mapping):
        return ("object", frozenset((str(k), _canonical(v)) for k, v in value.items()))
    return ("other", repr(value))


def _call_from_json(value: Any) -> tuple[str, Any] | None:
    """(name, arguments) from ``{"name", "arguments"|"parameters"}`` (arguments may be a JSON string)."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except PARSE_ERRORS:
            return None
    return (value["name"], args) if isinstance(args, dict) else None


def _call_from_python(text: str) -> tuple[str, Any] | None:
    """(name, kwargs) from a ``name(arg=value, ...)`` line, read with `ast` (literals only, no eval)."""
    code = extract_code(text)
    for candidate in [code.strip(), *code.splitlines()]:
        try:
            node = ast.parse(candidate.strip(), mode="eval").body
        except (SyntaxError, *PARSE_ERRORS):
            continue
        if not isinstance(node, ast.Call) or node.args or any(k.arg is None for k in node.keywords):
            continue
        try:
            name = ast.unparse(node.func)
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except (TypeError, SyntaxError, *PARSE_ERRORS):
            continue
        if re.fullmatch(r"[A-Za-z_][\w.]*", name):
            return name, kwargs
    return None


def tool_call(completion: str, example: Example) -> float:
    """1.0 when the completion calls the gold tool with exactly the gold arguments."""
    try:
        gold = _call_from_json(json.loads(example.answer))
    except PARSE_ERRORS:
        gold = None
    if gold is None:
        raise ReadJaxError(f"tool_call: item {example.id!r} answer is not JSON {{'name': ..., 'arguments': ...}}")
    pred = _call_from_json(extract_json(completion, kind=dict)) or _call_from_python(completion)
    if pred is None:
        return 0.0
    return float(pred[0] == gold[0] and _canonical(pred[1]) == _canonical(gold[1]))


# --------------------------------------------------------------------------- dispatch
def per_item(completion: str, example: Example) -> float:
    """Score with the generate metric the item names in ``info["eval_type"]`` (mixed tasks)."""
    name = _info(example, "eval_type", "per_item")
    metric = get_metric(str(name))
    if metric.kind != "generate" or metric.name == "per_item":
        raise ReadJaxError(f"per_item: item {example.id!r} eval_type {name!r} cannot score a completion per item")
    return metric.score(completion, example)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("exact_match", "generate", lambda c, ex: exact_match(c, ex.answer)),
        Metric("numeric_exact", "generate", numeric_exact),
        Metric("mc_loglik", "choice", _mc(normalise=False)),
        Metric("mc_loglik_norm", "choice", _mc(normalise=True)),
        Metric("choice_letter", "generate", choice_letter),
        Metric("pass_at_1", "generate", pass_at_1),
        Metric("instruction_following", "generate", _instruction_following(strict=True)),
        Metric("instruction_following_loose", "generate", _instruction_following(strict=False)),
        Metric("tool_call", "generate", tool_call),
        Metric("per_item", "generate", per_item),
    )
}

# the official artifact's eval_type names
ALIASES: dict[str, str] = {
    "gsm8k_exact": "numeric_exact",
    "humaneval_pass@1": "pass_at_1",
    "logprob": "mc_loglik_norm",
}


def get_metric(name: str) -> Metric:
    key = ALIASES.get(name, name)
    if key not in METRICS:
        known = sorted(set(METRICS) | set(ALIASES))
        raise ReadJaxError(f"unknown eval_type {name!r}; known: {', '.join(known)}")
    return METRICS[key]
