"""The real data source: Hugging Face / GGUF teacher and student, their tokenizer and chat
template, a capability template pack and benchmark task cards (`read_jax.sources`).

Everything that can be checked without weights is checked first (model specs, vocabularies,
the chat template, the pack, the task and its data), so a bad config fails in seconds with
one line instead of after minutes of loading.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from read_jax.capabilities.registry import CapabilityRegistry, Example, Task
from read_jax.capabilities.sampler import PromptSampler
from read_jax.errors import ReadJaxError
from read_jax.sources import Components, check_context, check_policies, mesh_shape
from read_jax.sources.config import RealSourceConfig


class PackSource:
    """A capability pack as the loop's `CapabilitySource`; the leakage filter holds every
    evaluation prompt of the run's tasks (target and extra) besides what the loop adds."""

    def __init__(self, pack, eval_prompts: Sequence[str]):
        self.pack = pack
        self.capabilities = tuple(pack.capabilities)
        self.eval_prompts = tuple(eval_prompts)

    def prompt_sampler(self, seed: int = 0, extra_eval_prompts: Sequence[str] = ()) -> PromptSampler:
        return self.pack.prompt_sampler(seed, eval_prompts=[*self.eval_prompts, *extra_eval_prompts])

    def probe_suite(self, n_per_capability: int = 32, seed: int = 0) -> dict[str, list[Example]]:
        return self.pack.probe_suite(n_per_capability, seed)


def task_prompts(task: Task) -> list[str]:
    """Every prompt a task evaluates on (both splits and the card's exemplars)."""
    return [e.prompt for e in task.dev + task.test] + [p for p, _ in task.card.exemplars]


def load_real_task(name: str, real: RealSourceConfig, pack, seed: int) -> Task:
    """A pack-built task (``real.pack_tasks``) or a benchmark from ``real.cards``."""
    if name in real.pack_tasks:
        n_dev, n_test = real.pack_task_sizes
        task = _field(f"real.pack_tasks.{name}", pack.task, name, real.pack_tasks[name], n_dev=n_dev,
                      n_test=n_test, seed=seed)
        # its items are drawn capability by capability with the mixture's weights: as for the synthetic
        # world's workloads, that mixture is the task's known requirement, for the report only (ReAD
        # never reads it)
        mixture = CapabilityRegistry(pack.capabilities).vector(real.pack_tasks[name], normalise=True)
        return dataclasses.replace(task, true_r=mixture)
    if not real.cards:
        raise ReadJaxError(f"loop.task: task {name!r} is not in real.pack_tasks and no real.cards file is configured; "
                           "add it to real.pack_tasks or set real.cards=FILE")
    from read_jax.evals.cards import load_task

    return load_task(real.cards, name, data_dir=real.data_dir or None, limit=real.eval_limit or None,
                     capabilities=pack.capabilities)


def load_chat_tokenizer(path: Path, real: RealSourceConfig):
    """The tokenizer with a chat template and a pad id (eos when the tokenizer has none)."""
    from read_jax.models.hf import load_tokenizer

    tokenizer = load_tokenizer(path)
    if real.chat_template:
        template = Path(real.chat_template)
        if not template.is_file():
            raise ReadJaxError(f"real.chat_template: {template} not found")
        tokenizer.chat_template = template.read_text()
    if not getattr(tokenizer, "chat_template", None):
        raise ReadJaxError(f"{path}: the tokenizer has no chat template; pass one as a Jinja file with "
                           "real.chat_template=PATH")
    if tokenizer.eos_token_id is None:
        raise ReadJaxError(f"{path}: the tokenizer has no eos token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _field(field: str, load, *args, **kwargs):
    """``load(*args)``, its one-line errors prefixed with the config field that named the input."""
    try:
        return load(*args, **kwargs)
    except ReadJaxError as err:
        raise type(err)(f"{field}: {err}") from None


def check_vocabularies(teacher_config, student_config, tokenizer, teacher_dir: Path, student_dir: Path,
                       tokenizer_dir: Path | None = None) -> None:
    """Distillation compares token distributions: one vocabulary for both models and the tokenizer."""
    if teacher_config.vocab_size != student_config.vocab_size:
        raise ReadJaxError(f"student {student_dir}: vocabulary size {student_config.vocab_size} differs from the "
                           f"teacher's ({teacher_config.vocab_size} at {teacher_dir}); ReAD needs one shared tokenizer")
    if len(tokenizer) > teacher_config.vocab_size:
        where = f"tokenizer {tokenizer_dir}" if tokenizer_dir is not None else "tokenizer"
        raise ReadJaxError(f"{where}: has {len(tokenizer)} tokens, more than the models' vocabulary "
                           f"({teacher_config.vocab_size}); pass the models' own tokenizer with real.tokenizer=DIR")


def _mesh(shape: Sequence[int], field: str = "real.mesh"):
    """The configured (data, fsdp, tp) mesh over all devices (of every process), or None for one device."""
    from read_jax.sharding import configured_mesh

    return configured_mesh(tuple(shape), field)


def build_components(config: Any) -> Components:
    from read_jax.capabilities.pack import CapabilityPack
    from read_jax.models.hf import encode_prompt, load_hf, read_hf_config
    from read_jax.models.resolve import resolve_model

    real: RealSourceConfig = config.real
    teacher_dir, student_dir = _field("teacher", resolve_model, config.teacher), \
        _field("student", resolve_model, config.student)
    teacher_config = _field("teacher", read_hf_config, teacher_dir, dtype=real.dtype)
    student_config = _field("student", read_hf_config, student_dir, dtype=real.dtype)
    tokenizer_dir = Path(real.tokenizer) if real.tokenizer else teacher_dir
    tokenizer = load_chat_tokenizer(tokenizer_dir, real)
    check_vocabularies(teacher_config, student_config, tokenizer, teacher_dir, student_dir, tokenizer_dir)

    pack = _field("real.pack", CapabilityPack.load, real.pack)
    check_policies(config, pack.capabilities)
    check_context(config, [("teacher", teacher_config, teacher_dir / "config.json"),
                           ("student", student_config, student_dir / "config.json")])
    task = load_real_task(config.loop.task, real, pack, seed=config.loop.seed)
    extra = tuple(load_real_task(name, real, pack, seed=config.loop.seed) for name in real.extra_evals
                  if name != config.loop.task)
    for t in (task, *extra):
        for name, _ in (t.card.stated_requirement or ()):
            if name not in pack.capabilities:
                raise ReadJaxError(f"task {t.name!r}: requirement names {name!r}, not a capability of pack "
                                   f"{real.pack!r} ({', '.join(pack.capabilities)})")
    source = PackSource(pack, [p for t in (task, *extra) for p in task_prompts(t)])

    mesh = _mesh(*mesh_shape(config))
    teacher = load_hf(teacher_dir, dtype=real.dtype, mesh=mesh)[0]
    student = load_hf(student_dir, dtype=real.dtype, mesh=mesh)[0]
    return Components(source=source, task=task, teacher=teacher, student=student, tokenizer=tokenizer,
                      encode_prompt=lambda p: encode_prompt(tokenizer, p), extra_tasks=extra, mesh=mesh,
                      description={"source": "real", "teacher": str(teacher_dir), "student": str(student_dir),
                                   "teacher_params": teacher_config.num_params(),
                                   "student_params": student_config.num_params(),
                                   "teacher_layers": teacher_config.num_hidden_layers,
                                   "student_layers": student_config.num_hidden_layers, "pack": real.pack},
                      task_names=tuple(real.pack_tasks),  # benchmark cards need their data: not auxiliary tasks
                      load_task=lambda name: load_real_task(name, real, pack, seed=config.loop.seed))
