"""Template library (method.md §3): instruction scaffold + typed slots + output format.

A template is one JSON object per line of a `.jsonl` file:

    {"id": "math.add.0", "capability": "math", "op": "add",
     "scaffold": "{a}+{b}=", "output_format": "integer",
     "slots": {"a": {"type": "int", "pattern": "\\d+"}, "b": "int"},
     "fixed": {"attr": "city"}, "weight": 1.0, "bonus": 0.0}

- `scaffold` uses `{name}` placeholders (`{{` / `}}` for literal braces).
- `slots` declares every placeholder: a type name (filled by a provider, e.g. the
  synthetic world's generators), optionally a finite `values` list (the real-model
  path: free-text slots filled from lists) and a `pattern` used to parse a prompt back.
- `fixed` holds slot values implied by the template itself (not in the text).
- `op` names the generator / solver family (world templates); `bonus` is a
  template-level difficulty term added to the raw difficulty.

Optional keys used by real-model template packs (`read_jax.capabilities.pack`), ignored
by the synthetic world: a slot's `record` tag (slots with the same pool and tag share one
drawn record), and at template level `answer` (a reference-answer format string),
`eval_type` (the metric scoring it), `factors` (difficulty factors: numbers or
expressions), `compute` (named expressions evaluated before filling), `require`
(conditions a draw must meet), `choices` (multiple-choice options, gold first) and
`info` (what the metric reads from `Example.info`).  The pack gives them meaning; here
they are only carried, so a world template file loads exactly as before.

Filling is deterministic: the same template, seed and providers give the same prompt.
"""

from __future__ import annotations

import functools
import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from read_jax.errors import ReadJaxError

Provider = Callable[[np.random.Generator], str]

_FORMATTER = string.Formatter()
_SLOT_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class SlotSpec:
    name: str
    type: str = "text"
    values: tuple[str, ...] | None = None
    pattern: str | None = None
    record: str | None = None  # pack slots: which drawn record of the slot's pool fills it

    def __post_init__(self) -> None:
        if not _SLOT_NAME.match(self.name):
            raise ReadJaxError(f"slot name {self.name!r} must match {_SLOT_NAME.pattern}")
        if self.values is not None:
            vals = tuple(str(v) for v in self.values)
            if not vals:
                raise ReadJaxError(f"slot {self.name!r}: values list is empty")
            object.__setattr__(self, "values", vals)
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as err:
                raise ReadJaxError(f"slot {self.name!r}: bad pattern {self.pattern!r}: {err}") from None

    @classmethod
    def from_json(cls, name: str, spec: Any) -> "SlotSpec":
        if isinstance(spec, str):
            return cls(name=name, type=spec)
        if isinstance(spec, list):
            return cls(name=name, type="choice", values=tuple(spec))
        if isinstance(spec, dict):
            unknown = set(spec) - {"type", "values", "pattern", "record"}
            if unknown:
                raise ReadJaxError(f"slot {name!r}: unknown keys {sorted(unknown)}")
            vals = spec.get("values")
            return cls(
                name=name,
                type=spec.get("type", "choice" if vals is not None else "text"),
                values=tuple(vals) if vals is not None else None,
                pattern=spec.get("pattern"),
                record=spec.get("record"),
            )
        raise ReadJaxError(f"slot {name!r}: spec must be a type name, a list or an object")

    def to_json(self) -> Any:
        d: dict[str, Any] = {"type": self.type}
        if self.values is not None:
            d["values"] = list(self.values)
        if self.pattern is not None:
            d["pattern"] = self.pattern
        if self.record is not None:
            d["record"] = self.record
        return d


def _parse_scaffold(scaffold: str) -> list[tuple[str, str | None]]:
    """[(literal, field_name_or_None)] via str.format's own parser (handles {{ }})."""
    out = []
    try:
        for literal, fname, spec, conv in _FORMATTER.parse(scaffold):
            if fname is not None and (spec or conv or not _SLOT_NAME.match(fname)):
                raise ReadJaxError(f"scaffold {scaffold!r}: placeholder {{{fname}}} must be a bare slot name")
            out.append((literal, fname))
    except ValueError as err:
        raise ReadJaxError(f"scaffold {scaffold!r}: {err}") from None
    return out


@functools.lru_cache(maxsize=4096)
def _compile_scaffold(scaffold: str, patterns: tuple[tuple[str, str | None], ...]) -> re.Pattern[str]:
    pats = dict(patterns)
    parts, seen = [], set()
    for literal, f in _parse_scaffold(scaffold):
        parts.append(re.escape(literal))
        if f is None:
            continue
        if f in seen:
            parts.append(f"(?P={f})")
        else:
            parts.append(f"(?P<{f}>{pats.get(f) or '.+?'})")
            seen.add(f)
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True)
class Template:
    id: str
    capability: str
    scaffold: str
    slots: tuple[SlotSpec, ...] = ()
    output_format: str = ""
    op: str | None = None
    fixed: tuple[tuple[str, str], ...] = ()
    weight: float = 1.0
    bonus: float = 0.0
    style: str = ""  # "" = always active; else active only when a world selects this style
    # pack keys (see the module docstring); carried, not interpreted, here
    answer: str = ""
    eval_type: str = ""
    factors: tuple[tuple[str, Any], ...] = ()
    compute: tuple[tuple[str, str], ...] = ()
    require: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise ReadJaxError("a template needs a non-empty string id")
        if not self.capability:
            raise ReadJaxError(f"template {self.id!r}: capability is required")
        if isinstance(self.fixed, Mapping):
            object.__setattr__(self, "fixed", tuple(sorted((str(k), str(v)) for k, v in self.fixed.items())))
        if not (self.weight > 0):
            raise ReadJaxError(f"template {self.id!r}: weight must be > 0")
        names = [s.name for s in self.slots]
        if len(set(names)) != len(names):
            raise ReadJaxError(f"template {self.id!r}: duplicate slot declarations")
        placeholders = set(self.placeholders)
        if placeholders != set(names):
            raise ReadJaxError(
                f"template {self.id!r}: scaffold placeholders {sorted(placeholders)}"
                f" != declared slots {sorted(names)}; declare each placeholder under slots and use each slot"
            )
        clash = placeholders & {k for k, _ in self.fixed}
        if clash:
            raise ReadJaxError(f"template {self.id!r}: slots {sorted(clash)} are both fixed and in the scaffold")

    # ---------------------------------------------------------------- structure
    @property
    def placeholders(self) -> tuple[str, ...]:
        seen: list[str] = []
        for _, f in _parse_scaffold(self.scaffold):
            if f is not None and f not in seen:
                seen.append(f)
        return tuple(seen)

    def slot(self, name: str) -> SlotSpec:
        for s in self.slots:
            if s.name == name:
                return s
        raise ReadJaxError(f"template {self.id!r} has no slot {name!r}")

    # ---------------------------------------------------------------- fill / parse
    def fill(self, values: Mapping[str, str]) -> str:
        missing = [n for n in self.placeholders if n not in values]
        if missing:
            raise ReadJaxError(f"template {self.id!r}: missing slot values {missing}")
        parts = []
        for literal, f in _parse_scaffold(self.scaffold):
            parts.append(literal)
            if f is not None:
                parts.append(str(values[f]))
        return "".join(parts)

    def regex(self) -> re.Pattern[str]:
        return _compile_scaffold(self.scaffold, tuple((s.name, s.pattern) for s in self.slots))

    def parse(self, prompt: str) -> dict[str, str] | None:
        """Slot values (plus `fixed`) that reproduce `prompt`, or None when it does not match."""
        m = self.regex().fullmatch(prompt)
        if m is None:
            return None
        out = dict(self.fixed)
        out.update(m.groupdict())
        if self.fill(out) != prompt:
            return None
        return out

    # ---------------------------------------------------------------- json
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Template":
        known = {"id", "capability", "scaffold", "slots", "output_format", "op", "fixed", "weight", "bonus", "style",
                 *_PACK_KEYS}
        unknown = set(d) - known
        if unknown:
            raise ReadJaxError(f"template {d.get('id')!r}: unknown keys {sorted(unknown)}")
        for k in ("id", "capability", "scaffold"):
            if k not in d:
                raise ReadJaxError(f"template {d.get('id')!r}: missing key {k!r}")
        slots = tuple(SlotSpec.from_json(n, s) for n, s in (d.get("slots") or {}).items())
        return cls(
            id=str(d["id"]),
            capability=str(d["capability"]),
            scaffold=str(d["scaffold"]),
            slots=slots,
            output_format=str(d.get("output_format", "")),
            op=d.get("op"),
            fixed=tuple(sorted((str(k), str(v)) for k, v in (d.get("fixed") or {}).items())),
            weight=float(d.get("weight", 1.0)),
            bonus=float(d.get("bonus", 0.0)),
            style=str(d.get("style", "")),
            **_pack_fields(d),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "capability": self.capability,
            "scaffold": self.scaffold,
            "slots": {s.name: s.to_json() for s in self.slots},
            "output_format": self.output_format,
        }
        if self.op is not None:
            d["op"] = self.op
        if self.fixed:
            d["fixed"] = dict(self.fixed)
        if self.weight != 1.0:
            d["weight"] = self.weight
        if self.bonus:
            d["bonus"] = self.bonus
        if self.style:
            d["style"] = self.style
        for k in _PACK_KEYS:
            v = getattr(self, k)
            if v:
                d[k] = dict(v) if k in ("factors", "compute", "info") else list(v) if isinstance(v, tuple) else v
        return d


_PACK_KEYS = ("answer", "eval_type", "factors", "compute", "require", "choices", "info")


def _pack_fields(d: Mapping[str, Any]) -> dict[str, Any]:
    """The optional pack keys of a template dict, type-checked (their meaning lives in the pack)."""
    out: dict[str, Any] = {}
    tid = d.get("id")
    for k in ("answer", "eval_type"):
        if k in d:
            if not isinstance(d[k], str):
                raise ReadJaxError(f"template {tid!r}: {k} must be a string")
            out[k] = d[k]
    for k in ("factors", "compute", "info"):
        if k in d:
            if not isinstance(d[k], Mapping):
                raise ReadJaxError(f"template {tid!r}: {k} must be an object")
            out[k] = dict(d[k]) if k == "info" else tuple((str(n), v) for n, v in d[k].items())
    for k in ("require", "choices"):
        if k in d:
            if not isinstance(d[k], list) or not all(isinstance(x, str) for x in d[k]):
                raise ReadJaxError(f"template {tid!r}: {k} must be a list of strings")
            out[k] = tuple(d[k])
    return out


def load_jsonl(path: str | Path) -> list[Template]:
    path = Path(path)
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as err:
            raise ReadJaxError(f"{path}:{lineno}: invalid JSON: {err}") from None
        try:
            out.append(Template.from_dict(d))
        except ReadJaxError as err:
            raise ReadJaxError(f"{path}:{lineno}: {err}") from None
    return out


def write_jsonl(templates: Iterable[Template], path: str | Path) -> None:
    Path(path).write_text("".join(json.dumps(t.to_dict()) + "\n" for t in templates), encoding="utf-8")


class TemplateLibrary:
    """An ordered, validated set of templates; integer index = position in the library."""

    def __init__(self, templates: Sequence[Template], capabilities: Sequence[str] | None = None):
        self.templates: tuple[Template, ...] = tuple(templates)
        ids = [t.id for t in self.templates]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ReadJaxError(f"duplicate template ids: {dup}")
        self._index = {t.id: i for i, t in enumerate(self.templates)}
        if capabilities is not None:
            unknown = sorted({t.capability for t in self.templates} - set(capabilities))
            if unknown:
                raise ReadJaxError(f"templates name unknown capabilities: {unknown}")
        self._by_cap: dict[str, tuple[int, ...]] = {}
        for i, t in enumerate(self.templates):
            self._by_cap.setdefault(t.capability, ())
            self._by_cap[t.capability] += (i,)

    @classmethod
    def load(cls, paths: str | Path | Sequence[str | Path], capabilities: Sequence[str] | None = None) -> "TemplateLibrary":
        """Load one `.jsonl` file, every `.jsonl` in a directory (sorted), or a list of either."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        files: list[Path] = []
        for p in paths:
            p = Path(p)
            files.extend(sorted(p.glob("*.jsonl")) if p.is_dir() else [p])
        templates: list[Template] = []
        for f in files:
            templates.extend(load_jsonl(f))
        return cls(templates, capabilities)

    def __len__(self) -> int:
        return len(self.templates)

    def __iter__(self):
        return iter(self.templates)

    def __getitem__(self, key: int | str) -> Template:
        if isinstance(key, str):
            if key not in self._index:
                raise ReadJaxError(f"unknown template id {key!r}")
            return self.templates[self._index[key]]
        return self.templates[key]

    def index(self, template_id: str) -> int:
        return self._index[self[template_id].id]

    @property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(self._by_cap)

    def indices(self, capability: str) -> tuple[int, ...]:
        if capability not in self._by_cap:
            raise ReadJaxError(f"no templates for capability {capability!r}")
        return self._by_cap[capability]

    def for_capability(self, capability: str) -> tuple[Template, ...]:
        return tuple(self.templates[i] for i in self.indices(capability))

    def parse(self, prompt: str, capability: str | None = None) -> list[tuple[Template, dict[str, str]]]:
        """Every (template, slot values) that reproduces `prompt`."""
        cands = self.templates if capability is None else self.for_capability(capability)
        out = []
        for t in cands:
            slots = t.parse(prompt)
            if slots is not None:
                out.append((t, slots))
        return out


def fill_slots(
    template: Template,
    rng: np.random.Generator | int,
    providers: Mapping[str, Provider] | None = None,
) -> dict[str, str]:
    """Deterministic slot values: providers[slot.type](rng) first, else a draw from `values`."""
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    providers = providers or {}
    out = dict(template.fixed)
    for s in template.slots:
        if s.type in providers:
            out[s.name] = str(providers[s.type](rng))
        elif s.values is not None:
            out[s.name] = s.values[int(rng.integers(len(s.values)))]
        else:
            raise ReadJaxError(f"template {template.id!r}: no provider or values for slot {s.name!r} ({s.type})")
    return out


def instantiate(
    template: Template,
    rng: np.random.Generator | int,
    providers: Mapping[str, Provider] | None = None,
) -> tuple[str, dict[str, str]]:
    """(prompt, slot values) for one deterministic filling of `template`."""
    slots = fill_slots(template, rng, providers)
    return template.fill(slots), slots
