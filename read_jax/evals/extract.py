"""Answer extraction from an instruct model's free-text completion, and output-format checks.

Instruct models wrap answers in prose, Markdown fences and restatements, so a metric
first has to find the answer.  Every extractor here is a pure function of the text that
returns ``None`` (or the text itself, for code) when it finds nothing, so a metric can
score "no answer" as wrong instead of raising.  The same parsers back `check_format`,
which tells whether a teacher's answer obeys its template's declared output format.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from read_jax.errors import ReadJaxError

# --------------------------------------------------------------------------- numbers
# A number token: optional sign (ASCII or Unicode minus) and dollar sign, digits with
# optional thousands commas (only well-formed 3-digit groups), decimals, and an optional
# fraction denominator.  The look-behind keeps digits glued to words ("x2", "v1.5") and
# the second half of a decimal out.
_NUMBER_BODY = r"[-\u2212]?\$?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:/\d+(?:\.\d+)?)?"
_NUMBER_RE = re.compile(r"(?<![\w.])" + _NUMBER_BODY)
_HASHES_RE = re.compile(r"####\s*(" + _NUMBER_BODY + ")")
_STATED_RE = re.compile(r"(?:answer\s*(?:is|:|=)|\\boxed\{)\s*:?\s*\**\s*(" + _NUMBER_BODY + ")", re.IGNORECASE)


def normalise_number(text: str) -> str | None:
    """Canonical string of one number token: ``"$1,234.50"`` -> ``"1234.5"``, ``"3.0"`` -> ``"3"``.

    Integers print without a decimal point, terminating decimals without trailing zeros,
    other fractions as ``"p/q"`` in lowest terms -- so equal values compare equal as strings.
    Returns None when `text` is not a single number.
    """
    s = text.strip().replace("\u2212", "-").replace("$", "").replace(",", "").replace(" ", "")
    s = s.rstrip(".")
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            if Decimal(den) == 0:
                return None
            value = Fraction(Decimal(num)) / Fraction(Decimal(den))
        else:
            value = Fraction(Decimal(s))
    except (InvalidOperation, ValueError, OverflowError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    twos = fives = 0
    rest = value.denominator
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    if rest != 1:  # not a terminating decimal
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)  # value * 10**places is an integer: exact, no rounding
    digits = str(abs(value.numerator) * 10**places // value.denominator).rjust(places + 1, "0")
    sign = "-" if value < 0 else ""
    return f"{sign}{digits[:-places]}.{digits[-places:]}".rstrip("0")


def extract_number(text: str) -> str | None:
    """The final numeric answer of a GSM8K/MGSM-style completion, normalised, or None.

    Preference order mirrors how answers are stated: the last ``#### N`` marker, then the
    last "answer is N" / "Answer: N" / ``\\boxed{N}``, then the last number in the text.
    """
    for pattern in (_HASHES_RE, _STATED_RE):
        found = pattern.findall(text)
        if found:
            return normalise_number(found[-1])
    numbers = _NUMBER_RE.findall(text)
    return normalise_number(numbers[-1]) if numbers else None


# --------------------------------------------------------------------------- fenced blocks
_FENCE_RE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = ("", "python", "python3", "py")


def _fenced(text: str, tags: tuple[str, ...]) -> list[str]:
    """Bodies of the fenced blocks whose language tag is in `tags` (an unclosed last fence
    runs to the end: completions are often cut at the token limit)."""
    return [body for tag, body in _FENCE_RE.findall(text) if tag.lower() in tags]


def extract_code(text: str) -> str:
    """The first ```python / ```py / untagged fenced block, else the whole text."""
    blocks = _fenced(text, _PYTHON_TAGS)
    return blocks[0] if blocks else text


# --------------------------------------------------------------------------- JSON
# what parsing untrusted JSON (or Python literals) can raise: deep nesting recurses
PARSE_ERRORS = (ValueError, RecursionError, MemoryError)
_MAX_JSON_STARTS = 2000  # bound the scan on adversarial "[[[[..." text


def extract_json(text: str, *, kind: type | None = None) -> Any | None:
    """The first JSON value in `text`: a fenced ```json (or untagged) block that parses,
    else the first balanced ``{...}``/``[...]`` that parses.  With `kind` (``dict`` or
    ``list``) only values of that type count, so "see [1]" does not hide a later object."""

    def ok(value: Any) -> bool:
        return kind is None or isinstance(value, kind)

    for body in _fenced(text, ("json", "")):
        try:
            value = json.loads(body)
        except PARSE_ERRORS:
            continue
        if ok(value):
            return value
    decoder = json.JSONDecoder()
    for m in itertools.islice(re.finditer(r"[\[{]", text), _MAX_JSON_STARTS):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except PARSE_ERRORS:
            continue
        if ok(value):
            return value
    return None


_WHOLE_FENCE_RE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n(.*?)\n?```", re.DOTALL | re.IGNORECASE)


def parse_whole_json(text: str) -> tuple[bool, Any]:
    """(True, value) when all of `text` is one JSON document, bare or as the only content
    of a ```json / ``` fence; else (False, None).  Unlike `extract_json`, prose around
    the JSON makes it fail: this checks that an answer *is* JSON."""
    body = text.strip()
    fenced = _WHOLE_FENCE_RE.fullmatch(body)
    try:
        return True, json.loads(fenced.group(1) if fenced else body)
    except PARSE_ERRORS:
        return False, None


# --------------------------------------------------------------------------- choice letters
_LETTER_PATTERNS = (
    # "The answer is (B)", "Answer: B", "answer is **C**"
    re.compile(r"answer\s*(?:is|:)\s*:?\s*[*(\[]*\s*([A-Z])\s*[*)\]]*(?![\w'])", re.IGNORECASE),
    # the whole completion is a letter: "B", "(B)", "B."
    re.compile(r"^\s*[*(\[]*([A-Z])[*)\].:]*\s*$"),
    # a leading option label: "B. Paris", "(B) Paris", "B) Paris"
    re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.):])(?=\s|$)"),
    # a parenthesised label anywhere: "... so (C)."
    re.compile(r"\(([A-Z])\)"),
)


def extract_choice_letter(text: str, n_choices: int) -> int | None:
    """The 0-based index of the option letter a completion picks, or None.

    Only capital letters count, and only in answer-like positions (an "answer is" phrase,
    the whole text, a leading "B." label, a parenthesised "(B)"), so the article "A" or a
    capital inside a word is never read as a choice.  A letter past the last option is
    ignored.  Within a pattern the last match wins (models restate their final pick last).
    """
    if n_choices <= 0:
        return None
    for i, pattern in enumerate(_LETTER_PATTERNS):
        letters = [next(g for g in m.groups() if g) for m in pattern.finditer(text)]
        if i == 0:  # "answer is" is case-insensitive; the letter must still be a capital
            letters = [g for g in letters if g.isupper()]
        for letter in reversed(letters):
            idx = ord(letter) - ord("A")
            if 0 <= idx < n_choices:
                return idx
    return None


# --------------------------------------------------------------------------- output formats
_INTEGER_RE = re.compile(r"^[-\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)$")
_NUMBER_ONLY_RE = re.compile("^" + _NUMBER_BODY + r"\.?$")


def _is_python(text: str) -> bool:
    code = extract_code(text)
    try:
        return bool(ast.parse(code).body)
    except (SyntaxError, *PARSE_ERRORS):
        return False


_FORMAT_CHECKS = {
    "integer": lambda t: bool(_INTEGER_RE.match(t)),
    "number": lambda t: bool(_NUMBER_ONLY_RE.match(t)) and normalise_number(t) is not None,
    "json": lambda t: parse_whole_json(t)[0],
    "python": _is_python,
    "one_word": lambda t: len(t.split()) == 1 and any(ch.isalnum() for ch in t),
    "yes_no": lambda t: t.rstrip(".!").strip().lower() in ("yes", "no"),
    "letter": lambda t: bool(re.fullmatch(r"[(\[]?[A-Z][)\]]?[.]?", t)),
    "free": lambda t: True,
}
OUTPUT_FORMATS: tuple[str, ...] = tuple(_FORMAT_CHECKS)


def check_format(output_format: str, text: str) -> bool:
    """Whether `text` (stripped) obeys a template's output format.

    Checks the whole answer, not an extraction: a teacher answer "The answer is 4" does
    not obey "integer".  ``"free"`` accepts anything, including the empty string; every
    other format rejects an empty answer.
    """
    if output_format not in _FORMAT_CHECKS:
        raise ReadJaxError(f"output_format {output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    return bool(_FORMAT_CHECKS[output_format](text.strip()))
