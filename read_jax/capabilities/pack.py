"""Capability template packs for real models (method.md §3): templates + seed pools + a manifest.

A pack is a directory:

    pack.json                 manifest: capabilities, curriculum, share cap, difficulty factors/weights
    templates/<cap>.jsonl     one template per line (`read_jax.capabilities.templates` format)
    pools/*.json              {pool: {"doc": ..., "records": [{field: value, ...}, ...]}}

A slot's type names where its value comes from:

- ``"<pool>.<field>"``: a record of that pool; slots sharing a pool and a ``record`` tag
  (default: the pool's name) share one record, different tags draw different records;
- ``"computed"``: the value of the template's ``compute`` entry of the same name;
- ``"choices"``: the lettered options of a multiple-choice template (``choices``, gold first,
  shuffled per instance; the answer is the gold letter);
- anything else with inline ``values``: one of them.

``compute``, ``require`` and ``factors`` hold small expressions (`_Expr`: arithmetic,
comparisons, ``tag.field``, a few functions such as ``digits``, ``draw('pool')``, ``coin()``);
``answer``, ``choices`` and the strings in ``info`` are format strings over slot names,
``tag.field`` and computed names (a string that is one placeholder keeps the value's type).

Everything is validated when the pack loads, each error one line naming the file (and line)
and the field, so a broken template fails at load rather than mid-run.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from read_jax.capabilities.difficulty import CURRICULUM, DifficultyScale, fit_scales
from read_jax.capabilities.registry import TIERS, Example, Task, TaskCard
from read_jax.capabilities.sampler import LeakageFilter, PromptSampler, SamplerConfig, prompt_hash
from read_jax.capabilities.pack_expr import (
    _CTX_FUNCS, _FUNCS, _Ctx, _format_fields, _parse_expr, _strings, as_text, evaluate, render,
)
from read_jax.capabilities.templates import Template, TemplateLibrary
from read_jax.errors import ReadJaxError

PACK_DIR = Path(__file__).parent / "packs"
OUTPUT_FORMATS = ("integer", "number", "json", "python", "one_word", "yes_no", "letter", "free")
EVAL_TYPES = ("exact_match", "numeric_exact", "pass_at_1", "instruction_following", "tool_call", "choice_letter")
_NEEDS_ANSWER = ("exact_match", "numeric_exact", "tool_call")
_NEEDS_INFO = {"pass_at_1": ("test", "entry_point", "code_prompt"), "instruction_following": ("instructions",),
               "tool_call": ("tools",)}
_LETTERS = "ABCDEFGHIJ"
_MAX_DRAWS = 200  # redraws of one instance while `require` or distinct choices fail
_MAX_TRIES = 4000  # instances per example while looking for a tier / a new prompt
# stream ids for np.random.default_rng([seed, stream, ...])
_CALIB, _PROBE, _TASK = 7919, 5, 11


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


# =========================================================================== instances
@dataclasses.dataclass(frozen=True)
class Instance:
    """One filled template before difficulty is normalised."""

    prompt: str
    answer: str
    slots: dict[str, str]
    info: dict[str, Any]
    choices: tuple[str, ...]
    factors: dict[str, float]


class _Filler:
    """Draws records, evaluates expressions and renders one instance of a template."""

    def __init__(self, pools: Mapping[str, Sequence[dict]], plans: Mapping[str, _Plan]):
        self.pools, self.plans = pools, plans

    def fill(self, t: Template, rng: np.random.Generator) -> Instance:
        for _ in range(_MAX_DRAWS):
            inst = self._try(t, rng)
            if inst is not None:
                return inst
        raise ReadJaxError(f"template {t.id!r}: no draw met its require conditions in {_MAX_DRAWS} tries")

    def _try(self, t: Template, rng: np.random.Generator) -> Instance | None:
        plan = self.plans[t.id]
        ns: dict[str, Any] = {}
        ctx = _Ctx(ns, rng, self.pools, {})
        try:
            for s in t.slots:
                if s.name in plan.slot_fields:
                    tag, field = plan.slot_fields[s.name]
                    if tag not in ns:
                        ns[tag] = ctx.draw(plan.tags[tag])
                    ns[s.name] = ns[tag][field]
                elif s.values is not None:
                    ns[s.name] = s.values[int(rng.integers(len(s.values)))]
            for name, src in t.compute:
                ns[name] = evaluate(str(src), ctx)
            if not all(evaluate(r, ctx) for r in t.require):
                return None
            choices = [as_text(render(c, ns)) for c in t.choices]
            if len(set(choices)) != len(choices):
                return None
            answer = as_text(render(t.answer, ns)) if t.answer else ""
            if choices:
                order = [int(i) for i in rng.permutation(len(choices))]
                choices = [choices[i] for i in order]
                gold = order.index(0)
                answer = _LETTERS[gold]
            slots = {}
            for s in t.slots:
                slots[s.name] = ("\n".join(f"{_LETTERS[i]}) {c}" for i, c in enumerate(choices))
                                 if s.type == "choices" else as_text(ns[s.name]))
            prompt = t.fill(slots)
            ns["prompt"] = prompt
            info = {"eval_type": t.eval_type, "output_format": t.output_format, **render(dict(t.info), ns)}
            if choices:
                info["gold"] = gold
            factors = {k: float(v if not isinstance(v, str) else evaluate(v, ctx)) for k, v in t.factors}
        except ReadJaxError as err:
            raise ReadJaxError(f"template {t.id!r}: {err}") from None
        except (ArithmeticError, TypeError, ValueError, KeyError, IndexError) as err:
            raise ReadJaxError(f"template {t.id!r}: {type(err).__name__}: {err}") from None
        return Instance(prompt=prompt, answer=answer, slots=slots, info=info, choices=tuple(choices), factors=factors)


# =========================================================================== the source
class PackSource:
    """A `PromptSource` over a pack: instances with calibrated difficulty d_c and tertile tiers.

    Raw difficulty = Σ_k weight_k · factor_k (the manifest's weights) + the template's
    `bonus`; scales are min-max fitted per capability on `calibration_size` draws keyed by `seed`.
    """

    def __init__(self, pack: "CapabilityPack", seed: int = 0):
        self.pack = pack
        self.capabilities: tuple[str, ...] = pack.capabilities
        self.library: TemplateLibrary = pack.library
        pools: dict[str, list[float]] = {}
        for ci, c in enumerate(self.capabilities):
            rng = np.random.default_rng([seed, _CALIB, ci])
            temps = self.library.for_capability(c)
            weights = _weights(temps)
            pools[c] = [self.raw(temps[int(rng.choice(len(temps), p=weights))], rng)[1]
                        for _ in range(pack.manifest.calibration_size)]
        self.scales: dict[str, DifficultyScale] = fit_scales(pools)

    def raw(self, template: Template, rng: np.random.Generator) -> tuple[Instance, float]:
        inst = self.pack.filler.fill(template, rng)
        weights = self.pack.manifest.factors[template.capability]
        return inst, float(sum(weights[k] * v for k, v in inst.factors.items())) + template.bonus

    def instantiate(self, template: Template, rng: np.random.Generator | int) -> Example:
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        inst, raw = self.raw(template, rng)
        d, tier = self.scales[template.capability](raw)
        return Example(prompt=inst.prompt, answer=inst.answer, capability=template.capability, difficulty=d,
                       template_id=template.id, tier=tier, slots=inst.slots,
                       id=f"{template.id}:{prompt_hash(inst.prompt)[:12]}", choices=inst.choices,
                       info={**inst.info, "factors": inst.factors})

    def sample(self, capability: str, rng: np.random.Generator, tier: str | None = None,
               templates: Sequence[Template] | None = None, exclude: set[str] | None = None) -> Example:
        """One example of `capability` (of `tier`, with a prompt hash not in `exclude`)."""
        temps = tuple(templates) if templates is not None else self.library.for_capability(capability)
        weights = _weights(temps)
        for _ in range(_MAX_TRIES):
            ex = self.instantiate(temps[int(rng.choice(len(temps), p=weights))], rng)
            if (tier is None or ex.tier == tier) and (exclude is None or prompt_hash(ex.prompt) not in exclude):
                return ex
        raise ReadJaxError(f"no new {capability} example of tier {tier!r} in {_MAX_TRIES} tries")


def _weights(temps: Sequence[Template]) -> np.ndarray:
    w = np.array([t.weight for t in temps], dtype=np.float64)
    return w / w.sum()


# =========================================================================== the pack
class CapabilityPack:
    """A validated template pack: `load`, then sources, probe suites, samplers and tasks."""

    def __init__(self, root: Path, manifest: Manifest, library: TemplateLibrary,
                 pools: Mapping[str, tuple[dict[str, Any], ...]], locations: Mapping[str, str]):
        self.root, self.manifest, self.library, self.pools = root, manifest, library, pools
        self.locations = dict(locations)  # template id -> "file:line"
        self.plans = {t.id: _plan(t, pools, manifest, self.locations[t.id]) for t in library}
        self.filler = _Filler(pools, self.plans)
        for c in manifest.capabilities:
            n = len(library.indices(c)) if c in library.capabilities else 0
            if n < manifest.min_templates:
                raise ReadJaxError(f"{root / 'pack.json'}: field 'share_cap': capability {c!r} has {n} templates, "
                                   f"a share cap of {manifest.max_share} over {manifest.window} needs "
                                   f">= {manifest.min_templates}")
        self._sources: dict[int, PackSource] = {}

    def __repr__(self) -> str:
        return f"CapabilityPack({self.name!r}, templates={len(self.library)}, pools={len(self.pools)})"

    @classmethod
    def load(cls, name_or_dir: str | Path) -> "CapabilityPack":
        """A packaged pack by name (``"read8"``) or a pack directory."""
        root = Path(name_or_dir)
        if not root.is_dir():
            if (PACK_DIR / str(name_or_dir)).is_dir():
                root = PACK_DIR / str(name_or_dir)
            else:
                known = sorted(p.name for p in PACK_DIR.iterdir() if (p / "pack.json").is_file())
                raise ReadJaxError(f"pack {str(name_or_dir)!r}: not a directory nor a packaged pack ({known})")
        manifest = Manifest.load(root / "pack.json")
        templates, locations = [], {}
        files = sorted((root / "templates").glob("*.jsonl"))
        if not files:
            raise ReadJaxError(f"{root / 'templates'}: no template files (*.jsonl)")
        for path in files:
            for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                where = f"{path}:{lineno}"
                try:
                    t = Template.from_dict(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ReadJaxError(f"{where}: invalid JSON: {err.msg}") from None
                except ReadJaxError as err:
                    raise ReadJaxError(f"{where}: {err}") from None
                if t.id in locations:
                    raise ReadJaxError(f"{where}: template {t.id!r}: id: already used at {locations[t.id]}")
                templates.append(t)
                locations[t.id] = where
        library = TemplateLibrary(templates)
        return cls(root, manifest, library, load_pools(root / "pools"), locations)

    # ------------------------------------------------------------------ views
    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def capabilities(self) -> tuple[str, ...]:
        return self.manifest.capabilities

    def verifiable(self, capability: str) -> tuple[Template, ...]:
        """Templates of `capability` with a metric (usable for tasks)."""
        return tuple(t for t in self.library.for_capability(capability) if t.eval_type)

    def source(self, seed: int = 0) -> PackSource:
        """The pack as a `PromptSource`; `seed` keys its calibration pool (cached per seed)."""
        if seed not in self._sources:
            self._sources[seed] = PackSource(self, seed)
        return self._sources[seed]

    def instantiate(self, template: Template | str, rng: np.random.Generator | int) -> Example:
        t = self.library[template] if isinstance(template, str) else template
        return self.source(self.manifest.calibration_seed).instantiate(t, rng)

    # ------------------------------------------------------------------ method plumbing
    def probe_suite(self, n_per_capability: int = 32, seed: int = 0) -> dict[str, list[Example]]:
        """Fixed probes per capability, stratified over tiers (≈ 1/3 each), prompts distinct."""
        if n_per_capability < 1:
            raise ReadJaxError(f"n_per_capability must be >= 1, got {n_per_capability}")
        src = self.source(self.manifest.calibration_seed)
        out = {}
        for ci, c in enumerate(self.capabilities):
            rng = np.random.default_rng([seed, _PROBE, ci])
            sizes = [n_per_capability // 3] * 3
            sizes[1] += n_per_capability - sum(sizes)
            seen: set[str] = set()
            exs = []
            for tier, k in zip(TIERS, sizes):
                for _ in range(k):
                    ex = src.sample(c, rng, tier=tier, exclude=seen)
                    seen.add(prompt_hash(ex.prompt))
                    exs.append(ex)
            out[c] = exs
        return out

    def prompt_sampler(self, seed: int = 0, eval_prompts: Iterable[str] = (),
                       config: SamplerConfig | None = None) -> PromptSampler:
        """ReAD's sampler over the pack; its leakage filter holds every `eval_prompts` hash."""
        config = config or SamplerConfig(window=self.manifest.window, max_share=self.manifest.max_share)
        return PromptSampler(self.source(self.manifest.calibration_seed), seed=seed,
                             leakage=LeakageFilter(eval_prompts), config=config)

    def task(self, name: str, mixture: Mapping[str, float], n_dev: int, n_test: int, seed: int = 0,
             description: str | None = None, n_exemplars: int = 3) -> Task:
        """A downstream task from the verifiable templates: items ~ `mixture` over capabilities.

        Exemplars, dev and test never share a normalised prompt; every item is scored by the
        ``per_item`` metric, which dispatches on ``info["eval_type"]``.
        """
        from read_jax.evals.metrics import get_metric

        if n_dev < 1 or n_test < 1:
            raise ReadJaxError(f"task {name!r}: n_dev and n_test must be >= 1")
        caps, w = self._mixture(name, mixture)
        src = self.source(self.manifest.calibration_seed)
        seen: set[str] = set()

        def draw(stream: int, n: int) -> list[Example]:
            rng = np.random.default_rng([seed, _TASK, stream])
            out = []
            for _ in range(n):
                c = caps[int(rng.choice(len(caps), p=w))]
                ex = src.sample(c, rng, templates=self.verifiable(c), exclude=seen)
                seen.add(prompt_hash(ex.prompt))
                out.append(dataclasses.replace(ex, task=name))
            return out

        exemplars = draw(0, n_exemplars)
        dev, test = draw(1, n_dev), draw(2, n_test)
        formats = sorted({t.output_format for c in caps for t in self.verifiable(c)})
        card = TaskCard(
            name=name,
            description=description or (f"Verifiable requests drawn from the {self.name} pack's "
                                        + ", ".join(f"{c} ({x:.0%})" for c, x in zip(caps, w)) + " templates."),
            input_format="a plain-text user request that states its own answer format",
            output_format="per item, as the request asks: " + ", ".join(formats),
            exemplars=tuple((e.prompt, e.answer) for e in exemplars),
            dev_size=n_dev, test_size=n_test, dev_seed=2 * seed + 1, test_seed=2 * seed + 2, eval_type="per_item",
        )
        return Task(card=card, dev=tuple(dev), test=tuple(test), metric=get_metric("per_item"))

    def _mixture(self, name: str, mixture: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
        caps = [c for c, x in mixture.items() if x > 0]
        bad = sorted(set(mixture) - set(self.capabilities))
        if bad:
            raise ReadJaxError(f"task {name!r}: mixture names unknown capabilities {bad}")
        if not caps or any(x < 0 or not np.isfinite(x) for x in mixture.values()):
            raise ReadJaxError(f"task {name!r}: mixture weights must be >= 0 with a positive sum")
        for c in caps:
            if not self.verifiable(c):
                raise ReadJaxError(f"task {name!r}: capability {c!r} has no verifiable templates")
        w = np.array([float(mixture[c]) for c in caps])
        return caps, w / w.sum()


__all__ = ["EVAL_TYPES", "OUTPUT_FORMATS", "CapabilityPack", "Instance", "Manifest", "PackSource", "as_text",
           "evaluate", "load_pools", "render"]
