"""Filling a capability pack's templates: one `Instance` per draw, and `PackSource`, the pack as
a `PromptSource` with calibrated difficulty and tiers (`read_jax.capabilities.pack`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from read_jax.capabilities.difficulty import DifficultyScale, fit_scales
from read_jax.capabilities.pack_expr import _Ctx, as_text, evaluate, render
from read_jax.capabilities.pack_manifest import _LETTERS, _Plan
from read_jax.capabilities.registry import Example
from read_jax.capabilities.sampler import prompt_hash
from read_jax.capabilities.templates import Template, TemplateLibrary
from read_jax.errors import ReadJaxError

if TYPE_CHECKING:
    from read_jax.capabilities.pack import CapabilityPack

_MAX_DRAWS = 200  # redraws of one instance while `require` or distinct choices fail
_MAX_TRIES = 4000  # instances per example while looking for a tier / a new prompt
# stream ids for np.random.default_rng([seed, stream, ...])
_CALIB, _PROBE, _TASK = 7919, 5, 11


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
