"""Where a run's data comes from: one small protocol between the method and its data.

The loop and the experiment need, from a data source: the capability list, a prompt
sampler (templates, tiers, curriculum, share cap, leakage filter), a probe suite, the
target task (card, profiling split, test split, metric) and the models with their
tokenizer.  `CapabilitySource` and `Components` are that contract; two implementations
build them from an `ExperimentConfig`:

- ``world``: the embedded synthetic world and its recipe-trained teacher / student
  (`read_jax.worlds.source`);
- ``real``: Hugging Face (or GGUF) teacher / student, their tokenizer and chat template,
  a capability template pack and benchmark task cards (`read_jax.sources.real`).

`build_components` picks one by the config's ``source`` name and imports it lazily, so
nothing in `read_jax.loop` / `read_jax.experiment` imports a particular source.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from read_jax.capabilities.registry import Example, Task
from read_jax.capabilities.sampler import PromptSampler
from read_jax.errors import ReadJaxError


class CapabilitySource(Protocol):
    """Capability-targeted prompts and probes (method.md §1, §3)."""

    capabilities: tuple[str, ...]

    def prompt_sampler(self, seed: int = 0, extra_eval_prompts: Sequence[str] = ()) -> PromptSampler:
        """ReAD's sampler; it rejects every evaluation prompt of the run's tasks plus ``extra_eval_prompts``."""
        ...

    def probe_suite(self, n_per_capability: int = 32, seed: int = 0) -> dict[str, list[Example]]:
        """A fixed probe set per capability (answered once by the teacher)."""
        ...


@dataclasses.dataclass
class Components:
    """What a run needs besides its config: a data source, the target task, models and a tokenizer.

    ``encode_prompt`` turns a user message into the model's prompt token ids (through the
    chat template on the real path); ``extra_tasks`` are benchmarks the report scores every
    final student on besides the target task.
    """

    source: CapabilitySource
    task: Task
    teacher: Any
    student: Any
    tokenizer: Any
    encode_prompt: Callable[[str], list[int]]
    mesh: Any = None
    extra_tasks: tuple[Task, ...] = ()
    description: dict[str, Any] = dataclasses.field(default_factory=dict)
    # every task of the source by name (built on demand): the auxiliary tasks the learned requirement
    # identifier g_φ trains on are these minus the target
    task_names: tuple[str, ...] = ()
    load_task: Callable[[str], Task] | None = None
    # the teacher's prompt ids when asked for a rationale before its answer (`generation.rationale`);
    # None: the source's teacher gives none
    encode_rationale_prompt: Callable[[str], list[int]] | None = None


# name -> "module:function" taking an ExperimentConfig and returning Components
SOURCES: dict[str, str] = {
    "world": "read_jax.worlds.source:build_components",
    "real": "read_jax.sources.real:build_components",
}


def check_policies(config: Any, capabilities: Sequence[str]) -> None:
    """Every ``best_fixed:W1,...,WC`` policy gives one weight per capability of the source (the
    config's own checks cannot: they do not know the capabilities)."""
    from read_jax.bandit.policies import parse_policy_spec

    for spec in config.policies:
        if ":" in spec:  # names alone were checked when the config was parsed (search baselines included)
            parse_policy_spec(spec, n_caps=len(capabilities), where="policies")


def check_context(config: Any, models: Sequence[tuple[str, Any, Any]]) -> None:
    """``loop.max_prompt_tokens`` plus ``loop.generation.max_new_tokens`` fit every model's context
    (``models``: (config field, `DecoderConfig`, where it was read from)), checked before any work."""
    loop = config.loop
    if loop.max_prompt_tokens:
        need = loop.max_prompt_tokens + loop.generation.max_new_tokens
        for field, model_config, where in models:
            context = model_config.max_position_embeddings
            if need > context:
                raise ReadJaxError(
                    f"loop.max_prompt_tokens: {loop.max_prompt_tokens} prompt + {loop.generation.max_new_tokens} "
                    f"answer tokens exceed the {field}'s context of {context} tokens (max_position_embeddings of "
                    f"{where}); " + (f"set loop.max_prompt_tokens <= {context - loop.generation.max_new_tokens}"
                                     if context > loop.generation.max_new_tokens else
                                     "lower loop.generation.max_new_tokens"))


def mesh_shape(config: Any) -> tuple[tuple[int, ...], str]:
    """The experiment's (data, fsdp, tp) mesh shape and the field it came from: ``mesh`` (both
    sources), else the older ``real.mesh``; empty: one device (or, multi-process, all of them
    data-parallel, `read_jax.sharding.configured_mesh`)."""
    top = tuple(getattr(config, "mesh", ()) or ())
    real_config = getattr(config, "real", None)
    real = tuple(getattr(real_config, "mesh", ()) or ())
    if top and real and top != real:
        raise ReadJaxError(f"mesh={list(top)} and real.mesh={list(real)} disagree; set only mesh")
    return (top, "mesh") if top else (real, "real.mesh")


def build_components(config: Any) -> Components:
    """The `Components` of ``config.source`` (imported on demand)."""
    if config.source not in SOURCES:
        raise ReadJaxError(f"source: unknown data source {config.source!r}; choose one of {', '.join(SOURCES)}")
    module, function = SOURCES[config.source].split(":")
    return getattr(importlib.import_module(module), function)(config)
