"""What a capability pack declares and how its files are checked (`read_jax.capabilities.pack`).

`Manifest` reads pack.json, `load_pools` the seed pools, and `_plan` checks each template against
both when the pack loads, so a broken template fails at load rather than mid-run.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from read_jax.capabilities.difficulty import CURRICULUM
from read_jax.capabilities.pack_expr import _CTX_FUNCS, _FUNCS, _format_fields, _parse_expr, _strings
from read_jax.capabilities.templates import Template
from read_jax.errors import ReadJaxError

OUTPUT_FORMATS = ("integer", "number", "json", "python", "one_word", "yes_no", "letter", "free")
EVAL_TYPES = ("exact_match", "numeric_exact", "pass_at_1", "instruction_following", "tool_call", "choice_letter")
_NEEDS_ANSWER = ("exact_match", "numeric_exact", "tool_call")
_NEEDS_INFO = {"pass_at_1": ("test", "entry_point", "code_prompt"), "instruction_following": ("instructions",),
               "tool_call": ("tools",)}
_LETTERS = "ABCDEFGHIJ"


# =========================================================================== manifest
@dataclasses.dataclass(frozen=True)
class Manifest:
    """pack.json: what the pack covers and how its difficulty and sampling are set."""

    name: str
    capabilities: tuple[str, ...]
    factors: Mapping[str, Mapping[str, float]]  # capability -> factor -> weight in the raw difficulty
    window: int = 128
    max_share: float = 0.25
    calibration_size: int = 384
    calibration_seed: int = 0
    description: str = ""

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReadJaxError(f"{path}: no pack manifest here") from None
        except json.JSONDecodeError as err:
            raise ReadJaxError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
        if not isinstance(d, dict):
            raise ReadJaxError(f"{path}: expected a JSON object of manifest fields")

        def need(key: str, kind: type) -> Any:
            if key not in d:
                raise ReadJaxError(f"{path}: field {key!r} is missing; add it (see the packaged read8/pack.json)")
            if not isinstance(d.get(key), kind):
                raise ReadJaxError(f"{path}: field {key!r} must be a {kind.__name__}")
            return d[key]

        caps = need("capabilities", list)
        if not caps or len(set(caps)) != len(caps) or not all(isinstance(c, str) and c for c in caps):
            raise ReadJaxError(f"{path}: field 'capabilities' must list distinct capability names")
        curriculum = need("curriculum", list)
        want = [[None if b == float("inf") else b, list(m)] for b, m in CURRICULUM]
        if curriculum != want:
            raise ReadJaxError(f"{path}: field 'curriculum' must be the method's {want} (the sampler implements only it)")
        cap = need("share_cap", dict)
        if set(cap) != {"window", "max_share"} or not isinstance(cap["window"], int) or cap["window"] < 1 \
                or not isinstance(cap["max_share"], (int, float)) or not 0 < cap["max_share"] <= 1:
            raise ReadJaxError(f"{path}: field 'share_cap' must be {{window: int >= 1, max_share: (0, 1]}}")
        diff = need("difficulty", dict)
        factors: dict[str, dict[str, float]] = {}
        for c in caps:
            spec = diff.get(c)
            w = spec.get("weights") if isinstance(spec, dict) else None
            if not isinstance(w, dict) or not w or not all(isinstance(v, (int, float)) and v > 0 for v in w.values()):
                raise ReadJaxError(f"{path}: field 'difficulty.{c}.weights' must map factor names to weights > 0")
            factors[c] = {str(k): float(v) for k, v in w.items()}
        extra = sorted(set(diff) - set(caps))
        if extra:
            raise ReadJaxError(f"{path}: field 'difficulty' names unknown capabilities {extra}")
        size = d.get("calibration_size", 384)
        if not isinstance(size, int) or size < 3:
            raise ReadJaxError(f"{path}: field 'calibration_size' must be an integer >= 3")
        if not isinstance(d.get("calibration_seed", 0), int):
            raise ReadJaxError(f"{path}: field 'calibration_seed' must be an integer")
        return cls(name=str(d.get("name", path.parent.name)), capabilities=tuple(caps), factors=factors,
                   window=cap["window"], max_share=float(cap["max_share"]), calibration_size=size,
                   calibration_seed=int(d.get("calibration_seed", 0)), description=str(d.get("description", "")))

    @property
    def min_templates(self) -> int:
        """Templates per capability that a one-hot allocation needs under the share cap."""
        cap = max(1, int(np.floor(self.max_share * self.window)))
        return -(-self.window // cap)


# =========================================================================== pools
def load_pools(directory: Path) -> dict[str, tuple[dict[str, Any], ...]]:
    """Every pool of every `*.json` file in `directory`, by name (names are global)."""
    pools: dict[str, tuple[dict[str, Any], ...]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ReadJaxError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
        if not isinstance(d, dict):
            raise ReadJaxError(f"{path}: a pool file must map pool names to {{doc, records}}")
        for name, pool in d.items():
            recs = pool.get("records") if isinstance(pool, dict) else None
            if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
                raise ReadJaxError(f"{path}: pool {name!r}: field 'records' must be a list of objects")
            if name in pools:
                raise ReadJaxError(f"{path}: pool {name!r} is defined twice")
            pools[name] = tuple(recs)
    return pools


# =========================================================================== template checks
@dataclasses.dataclass(frozen=True)
class _Plan:
    """How one template draws: record tags -> pools, slot kinds, computed record tags."""

    tags: Mapping[str, str]  # tag -> pool (slot tags and `x = draw('pool')` computes)
    slot_fields: Mapping[str, tuple[str, str]]  # slot -> (tag, field)


def _plan(t: Template, pools: Mapping[str, Sequence[dict]], manifest: Manifest, where: str) -> _Plan:
    """Validate a template against the pools and the manifest; raise `where: field: problem`."""

    def bad(field: str, msg: str) -> ReadJaxError:
        return ReadJaxError(f"{where}: template {t.id!r}: {field}: {msg}")

    if t.capability not in manifest.capabilities:
        raise bad("capability", f"{t.capability!r} is not one of the pack's capabilities")
    if t.output_format not in OUTPUT_FORMATS:
        raise bad("output_format", f"{t.output_format!r} is not one of {OUTPUT_FORMATS}")
    if t.eval_type and t.eval_type not in EVAL_TYPES:
        raise bad("eval_type", f"{t.eval_type!r} is not one of {EVAL_TYPES}")
    computes = dict(t.compute)
    tags: dict[str, str] = {}
    slot_fields: dict[str, tuple[str, str]] = {}
    choice_slots = []
    for s in t.slots:
        if s.type == "choices":
            choice_slots.append(s.name)
        elif s.type == "computed":
            if s.name not in computes:
                raise bad(f"slots.{s.name}", "a computed slot needs a compute entry of the same name")
        elif "." in s.type and s.values is None:
            pool, field = s.type.split(".", 1)
            if pool not in pools:
                raise bad(f"slots.{s.name}", f"type {s.type!r} names no pool (known: {sorted(pools)})")
            tag = s.record or pool
            if tags.setdefault(tag, pool) != pool:
                raise bad(f"slots.{s.name}", f"record tag {tag!r} is used for two pools")
            slot_fields[s.name] = (tag, field)
        elif s.values is None:
            raise bad(f"slots.{s.name}", f"type {s.type!r} names no pool and the slot has no values")
    for name, src in t.compute:
        try:
            tree = _parse_expr(str(src))
        except ReadJaxError as err:
            raise bad(f"compute.{name}", str(err)) from None
        body = tree.body
        if isinstance(body, ast.Call) and isinstance(body.func, ast.Name) and body.func.id == "draw":
            arg = body.args[0] if len(body.args) == 1 else None
            if not (isinstance(arg, ast.Constant) and arg.value in pools):
                raise bad(f"compute.{name}", "draw() takes the name of a pool, as a string literal")
            tags[name] = arg.value
    # the choices
    if t.eval_type == "choice_letter" or t.choices or choice_slots:
        if len(t.choices) < 2 or len(choice_slots) != 1 or len(t.choices) > len(_LETTERS):
            raise bad("choices", f"a multiple-choice template needs 2..{len(_LETTERS)} choices and exactly one "
                                 "slot of type 'choices'")
        if t.eval_type not in ("choice_letter", ""):
            raise bad("eval_type", "a multiple-choice template is scored by choice_letter")
    if t.eval_type in _NEEDS_ANSWER and not t.answer:
        raise bad("answer", f"eval_type {t.eval_type} needs a reference answer")
    for key in _NEEDS_INFO.get(t.eval_type, ()):
        if key not in t.info:
            raise bad(f"info.{key}", f"eval_type {t.eval_type} reads info[{key!r}]")
    # factors: exactly the capability's
    want = set(manifest.factors[t.capability])
    have = {k for k, _ in t.factors}
    if have != want:
        raise bad("factors", f"must define exactly {sorted(want)} (the manifest's {t.capability} factors), "
                             f"got {sorted(have)}")
    # every name and record field an expression or format string uses
    slots = {s.name for s in t.slots}
    known = slots | set(tags) | set(computes)
    refs: list[tuple[str, str, str | None]] = []  # (field of the template, name, record field)
    for key, src in [*(("compute." + n, s) for n, s in t.compute), *(("require", s) for s in t.require),
                     *(("factors." + n, s) for n, s in t.factors if isinstance(s, str))]:
        for node in ast.walk(_checked(bad, key, src)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                refs.append((key, node.value.id, node.attr))
            elif isinstance(node, ast.Name) and node.id not in _FUNCS and node.id not in _CTX_FUNCS:
                refs.append((key, node.id, None))
    fmts = [("answer", t.answer), *(("choices", c) for c in t.choices),
            *(("info", s) for s in _strings(dict(t.info)))]
    for key, fmt in fmts:
        try:
            fields = _format_fields(fmt)
        except ReadJaxError as err:
            raise bad(key, str(err)) from None
        for f in fields:
            head, _, field = f.partition(".")
            refs.append((key, head, field or None))
    for key, name, field in refs:
        if name not in known and not (name == "prompt" and key.startswith("factors.")):
            raise bad(key, f"unknown name {name!r} (not a slot, record tag or computed name)")
        if field is not None and name in tags:
            _check_field(tags[name], field, pools, lambda m: bad(key, m))
    for s, (tag, field) in slot_fields.items():
        _check_field(tags[tag], field, pools, lambda m: bad(f"slots.{s}", m))
    for pool in set(tags.values()):
        n_tags = sum(p == pool for p in tags.values())
        if len(pools[pool]) < n_tags:
            raise bad("slots", f"pool {pool!r} has {len(pools[pool])} records for {n_tags} distinct draws")
    return _Plan(tags=tags, slot_fields=slot_fields)


def _checked(bad: Callable[[str, str], ReadJaxError], key: str, src: Any) -> ast.AST:
    try:
        return _parse_expr(str(src))
    except ReadJaxError as err:
        raise bad(key, str(err)) from None


def _check_field(pool: str, field: str, pools: Mapping[str, Sequence[dict]], bad: Callable[[str], ReadJaxError]) -> None:
    recs = pools[pool]
    if not recs:
        raise bad(f"pool {pool!r} is empty; give it records in the pack's pools/*.json")
    for i, r in enumerate(recs):
        if field not in r:
            raise bad(f"record {i} of pool {pool!r} has no field {field!r}")
