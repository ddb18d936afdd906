"""Capability-targeted prompt sampling (method.md §3).

`PromptSampler.sample(w, n | token_budget, progress)` draws, for each prompt:
capability c ~ w, a tier from the budget curriculum, then (template, instance)
pairs -- templates among those the per-template share cap admits -- until one is
of that tier and does not leak an evaluation prompt (after `max_tries` the closest
tier is taken and counted in `stats["tier_missed"]`).

Determinism / resumption: every prompt draw uses its own generator
`np.random.default_rng([seed, counter])`, and the sampler state is just
`{"seed", "counter", "window", "stats"}` (ints and lists of ints), so
`PromptSampler.load_state_dict(s.state_dict())` continues the exact stream.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np

from read_jax.capabilities.difficulty import DifficultyScale, fit_scales, sample_tier, tier_distance
from read_jax.capabilities.registry import Example, TIERS
from read_jax.capabilities.templates import Template, TemplateLibrary, instantiate
from read_jax.errors import ReadJaxError

# --------------------------------------------------------------------------- leakage filter
_WS = re.compile(r"\s+")


def normalise_prompt(prompt: str) -> str:
    """Whitespace-collapsed, stripped, lower-cased prompt (the leakage filter's key)."""
    return _WS.sub(" ", prompt).strip().lower()


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(normalise_prompt(prompt).encode("utf-8")).hexdigest()


class LeakageFilter:
    """Rejects prompts whose normalised SHA-256 equals that of an evaluation prompt."""

    def __init__(self, eval_prompts: Iterable[str] = ()):
        self._hashes: set[str] = set()
        self.add(eval_prompts)

    def add(self, prompts: Iterable[str]) -> None:
        self._hashes.update(prompt_hash(p) for p in prompts)

    def __len__(self) -> int:
        return len(self._hashes)

    def is_leaked(self, prompt: str) -> bool:
        return prompt_hash(prompt) in self._hashes

    def __call__(self, prompt: str) -> bool:
        return self.is_leaked(prompt)


# --------------------------------------------------------------------------- share cap
class ShareCapWindow:
    """No template may take more than floor(max_share · window) of the last `window` draws."""

    def __init__(self, window: int = 128, max_share: float = 0.25):
        if window < 1 or not (0.0 < max_share <= 1.0):
            raise ReadJaxError(f"share cap needs window >= 1 and 0 < max_share <= 1, got {window}, {max_share}")
        self.window = int(window)
        self.max_share = float(max_share)
        self.cap = max(1, int(np.floor(max_share * window)))
        self._recent: deque[int] = deque(maxlen=self.window)
        self._counts: Counter[int] = Counter()

    def admissible(self, template_index: int) -> bool:
        """True when drawing this template now keeps every window within the cap."""
        # the draw evicts the oldest entry once the window is full
        count = self._counts[template_index]
        if len(self._recent) == self.window and self._recent[0] == template_index:
            count -= 1
        return count + 1 <= self.cap

    def push(self, template_index: int) -> None:
        if len(self._recent) == self.window:
            old = self._recent[0]
            self._counts[old] -= 1
        self._recent.append(int(template_index))
        self._counts[int(template_index)] += 1

    def state(self) -> list[int]:
        return list(self._recent)

    def load(self, recent: Sequence[int]) -> None:
        self._recent = deque((int(i) for i in recent), maxlen=self.window)
        self._counts = Counter(self._recent)


# --------------------------------------------------------------------------- prompt sources
class PromptSource(Protocol):
    """What the sampler needs from a world (or from a real-model template set)."""

    capabilities: tuple[str, ...]
    library: TemplateLibrary

    def instantiate(self, template: Template, rng: np.random.Generator) -> Example:
        """One example of `template` with difficulty and tier filled in."""
        ...


class ListPromptSource:
    """Real-model path: templates whose slots are free text filled from `values` lists.

    Raw difficulty = `difficulty_fn(template, slots, prompt)` (default: prompt length
    in characters / 100 + template bonus); scales are calibrated on a pool of
    `calibration_size` draws per capability.  No reference answer exists (answer = "").
    """

    def __init__(
        self,
        library: TemplateLibrary,
        capabilities: Sequence[str] | None = None,
        providers: Mapping[str, Callable[[np.random.Generator], str]] | None = None,
        difficulty_fn: Callable[[Template, Mapping[str, str], str], float] | None = None,
        calibration_size: int = 256,
        seed: int = 0,
    ):
        self.library = library
        self.capabilities = tuple(capabilities or library.capabilities)
        self.providers = dict(providers or {})
        self.difficulty_fn = difficulty_fn or (lambda t, s, p: len(p) / 100.0 + t.bonus)
        pools: dict[str, list[float]] = {}
        for ci, c in enumerate(self.capabilities):
            rng = np.random.default_rng([seed, 7919, ci])
            temps = library.for_capability(c)
            pools[c] = []
            for _ in range(calibration_size):
                t = temps[int(rng.integers(len(temps)))]
                prompt, slots = instantiate(t, rng, self.providers)
                pools[c].append(self.difficulty_fn(t, slots, prompt))
        self.scales: dict[str, DifficultyScale] = fit_scales(pools)

    def instantiate(self, template: Template, rng: np.random.Generator) -> Example:
        prompt, slots = instantiate(template, rng, self.providers)
        d, tier = self.scales[template.capability](self.difficulty_fn(template, slots, prompt))
        return Example(prompt=prompt, answer="", capability=template.capability, difficulty=d,
                       template_id=template.id, tier=tier, slots=slots)


# --------------------------------------------------------------------------- sampler
@dataclass(frozen=True)
class SamplerConfig:
    window: int = 128
    max_share: float = 0.25
    max_tries: int = 64  # instantiations per prompt while looking for the target tier


class PromptSampler:
    def __init__(
        self,
        source: PromptSource,
        seed: int = 0,
        leakage: LeakageFilter | None = None,
        config: SamplerConfig = SamplerConfig(),
    ):
        self.source = source
        self.capabilities = tuple(source.capabilities)
        self.library = source.library
        self.leakage = leakage or LeakageFilter()
        self.config = config
        self.seed = int(seed)
        self.counter = 0
        self.cap = ShareCapWindow(config.window, config.max_share)
        self.stats: dict[str, int] = {"drawn": 0, "leak_rejected": 0, "tier_missed": 0}
        for c in self.capabilities:
            n = len(self.library.indices(c))
            if n * self.cap.cap < self.cap.window:
                raise ReadJaxError(
                    f"capability {c!r} has {n} templates: with a share cap of {self.cap.cap}/{self.cap.window}"
                    f" a one-hot allocation could not be served; add templates or raise max_share"
                )

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "counter": self.counter, "window": self.cap.state(), "stats": dict(self.stats)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.counter = int(state["counter"])
        self.cap.load(state["window"])
        self.stats = {k: int(v) for k, v in state.get("stats", {}).items()} or self.stats

    # ---------------------------------------------------------------- drawing
    def _weights(self, w: Sequence[float] | Mapping[str, float]) -> np.ndarray:
        if isinstance(w, Mapping):
            unknown = set(w) - set(self.capabilities)
            if unknown:
                raise ReadJaxError(f"allocation names unknown capabilities {sorted(unknown)}")
            w = [float(w.get(c, 0.0)) for c in self.capabilities]
        w = np.asarray(w, dtype=np.float64).reshape(-1)
        if w.shape[0] != len(self.capabilities) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ReadJaxError(f"allocation must be {len(self.capabilities)} non-negative weights with a positive sum, got {w}")
        return w / w.sum()

    def draw(self, w: Sequence[float] | Mapping[str, float], progress: float = 0.0) -> Example:
        """One prompt; advances the state."""
        w = self._weights(w)
        while True:
            rng = np.random.default_rng([self.seed, self.counter])
            self.counter += 1
            c = self.capabilities[int(rng.choice(len(w), p=w))]
            tier = sample_tier(progress, rng)
            idx = [i for i in self.library.indices(c) if self.cap.admissible(i)]
            weights = np.array([self.library[i].weight for i in idx])
            weights = weights / weights.sum()
            # joint rejection over (admissible template, instance): the accepted example is a
            # draw from the capability's natural mix conditioned on the tier (some templates
            # only produce some tiers)
            best: tuple[int, Example] | None = None
            for _ in range(self.config.max_tries):
                ti = idx[int(rng.choice(len(idx), p=weights))]
                ex = self.source.instantiate(self.library[ti], rng)
                if self.leakage.is_leaked(ex.prompt):
                    self.stats["leak_rejected"] += 1
                    continue
                if ex.tier is None or ex.tier == tier:
                    best = (ti, ex)
                    break
                if best is None or tier_distance(ex.tier, tier) < tier_distance(best[1].tier, tier):
                    best = (ti, ex)
            if best is None:  # every try leaked: draw again with the next counter
                continue
            ti, ex = best
            if ex.tier is not None and ex.tier != tier:
                self.stats["tier_missed"] += 1
            self.cap.push(ti)
            self.stats["drawn"] += 1
            return ex

    def sample(
        self,
        w: Sequence[float] | Mapping[str, float],
        n: int | None = None,
        *,
        token_budget: int | None = None,
        progress: float = 0.0,
        count_tokens: Callable[[str], int] = len,
    ) -> list[Example]:
        """`n` prompts, or as many as fit in `token_budget` prompt tokens (never more).

        With a token budget, the first prompt that would not fit is not consumed:
        the state is rolled back so the next call draws it again.
        """
        if (n is None) == (token_budget is None):
            raise ReadJaxError("give exactly one of n or token_budget")
        out: list[Example] = []
        if n is not None:
            if n < 0:
                raise ReadJaxError(f"n must be >= 0, got {n}")
            return [self.draw(w, progress) for _ in range(n)]
        used = 0
        while True:
            saved = self.state_dict()
            ex = self.draw(w, progress)
            cost = int(count_tokens(ex.prompt))
            if used + cost > token_budget:
                self.load_state_dict(saved)
                return out
            used += cost
            out.append(ex)


def tier_histogram(examples: Iterable[Example]) -> dict[str, int]:
    h = {t: 0 for t in TIERS}
    for e in examples:
        if e.tier is not None:
            h[e.tier] += 1
    return h


def template_histogram(examples: Iterable[Example]) -> Counter[str]:
    return Counter(e.template_id for e in examples)

