"""Capability-targeted supervision machinery (method.md §2–§3), model-agnostic.

- `registry`: capability registry, `Example`, `TaskCard`, `Task`, exact-match scoring.
- `chain`: chained tasks, a request answered as a chain of capability requests.
- `templates`: JSONL template library (scaffold + typed slots + format), deterministic filling.
- `difficulty`: d_c(x) min-max normalisation, tertile tiers, budget curriculum.
- `sampler`: per-template share cap, leakage filter, the resumable `PromptSampler`.
- `requirement`: r_τ from the card, from interventions (simplex least squares), or a
  learned identifier g_φ(card); random sparse intervention allocations; reports.

`requirement` imports jax/flax; import it explicitly (`from read_jax.capabilities import
requirement`) so the data-only parts stay light.
"""

from read_jax.capabilities.chain import ChainBroken, TaskChain, chain_completions, reference_step_examples
from read_jax.capabilities.difficulty import (
    CURRICULUM,
    DifficultyScale,
    curriculum_mix,
    fit_scales,
    raw_difficulty,
    sample_tier,
)
from read_jax.capabilities.registry import (
    DEFAULT_CAPABILITIES,
    TIERS,
    CapabilityRegistry,
    Example,
    Task,
    TaskCard,
    exact_match,
    normalise_answer,
)
from read_jax.capabilities.sampler import (
    LeakageFilter,
    ListPromptSource,
    PromptSampler,
    PromptSource,
    SamplerConfig,
    ShareCapWindow,
    normalise_prompt,
    prompt_hash,
)
from read_jax.capabilities.templates import SlotSpec, Template, TemplateLibrary, fill_slots, instantiate, load_jsonl

__all__ = [
    "CURRICULUM",
    "DEFAULT_CAPABILITIES",
    "TIERS",
    "CapabilityRegistry",
    "ChainBroken",
    "DifficultyScale",
    "Example",
    "LeakageFilter",
    "ListPromptSource",
    "PromptSampler",
    "PromptSource",
    "SamplerConfig",
    "ShareCapWindow",
    "SlotSpec",
    "Task",
    "TaskChain",
    "TaskCard",
    "Template",
    "TemplateLibrary",
    "chain_completions",
    "curriculum_mix",
    "exact_match",
    "fill_slots",
    "fit_scales",
    "instantiate",
    "load_jsonl",
    "normalise_answer",
    "normalise_prompt",
    "prompt_hash",
    "raw_difficulty",
    "reference_step_examples",
    "sample_tier",
]
