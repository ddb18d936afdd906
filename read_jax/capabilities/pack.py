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

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from read_jax.capabilities.pack_expr import as_text, evaluate, render
from read_jax.capabilities.pack_manifest import EVAL_TYPES, OUTPUT_FORMATS, Manifest, _plan, load_pools
from read_jax.capabilities.pack_source import _PROBE, _TASK, Instance, PackSource, _Filler
from read_jax.capabilities.registry import TIERS, Example, Task, TaskCard
from read_jax.capabilities.sampler import LeakageFilter, PromptSampler, SamplerConfig, prompt_hash
from read_jax.capabilities.templates import Template, TemplateLibrary
from read_jax.errors import ReadJaxError

PACK_DIR = Path(__file__).parent / "packs"


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
