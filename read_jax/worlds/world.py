"""`World`: the embedded synthetic capability world and its data API.

    world = World(seed=0)                                  # WorldConfig() defaults
    world.capabilities                                     # 8 capability names
    world.sample("math", 16, seed=3, difficulty="hard")    # -> list[Example]
    world.tasks, world.task("word_problem")                # composite and workload downstream tasks
    world.mixture(10_000, seed=0)                          # teacher-training mixture
    world.prompt_sampler(seed=0)                           # ReAD's PromptSampler over this world
    world.tokenizer()                                      # char-level PreTrainedTokenizerFast

All randomness is `np.random.default_rng([world_seed, stream, ...])`; the same
arguments always give the same examples.
"""

from __future__ import annotations

import dataclasses
import hashlib
from functools import cached_property
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from read_jax.capabilities import (
    DEFAULT_CAPABILITIES, TIERS, CapabilityRegistry, DifficultyScale, Example, LeakageFilter, PromptSampler,
    SamplerConfig, Task, TaskCard, Template, TemplateLibrary, exact_match, fit_scales, raw_difficulty,
)
from read_jax.errors import ReadJaxError
from read_jax.worlds.world_chain import WorldChain
from read_jax.worlds.data import WorldConfig, WorldData, build_world_data
from read_jax.worlds.ops import OPS, Op
from read_jax.worlds.rationales import cot_prompt, final_answer, rationale, with_rationale
from read_jax.worlds.chain_plan import ChainPlan
from read_jax.worlds.chain_tasks import CHAIN_OPS, CHAIN_PLANS, CHAIN_SPECS
from read_jax.worlds.tasks import COMPOSITE_OPS, PLANS, TASK_SPECS, WORKLOAD_SPECS, TaskSpec, WorkloadSpec
from read_jax.worlds.tokenizer import SEP, build_tokenizer

_HERE = Path(__file__).parent
TEMPLATE_DIR = _HERE / "templates"
TASK_TEMPLATE_DIR = _HERE / "task_templates"

# stream ids for np.random.default_rng([world_seed, stream, ...])
_CALIB, _SAMPLE, _TASK, _MIX, _PROBE, _EXEMPLAR = 1, 2, 3, 4, 5, 6
_MAX_TRIES = 400
TASK_OPS: dict[str, Op] = {**COMPOSITE_OPS, **CHAIN_OPS}  # ops of the task templates (composite and chained)
TASK_PLANS: dict[str, ChainPlan] = {**PLANS, **CHAIN_PLANS}


class World:
    """A synthetic capability world (implements the `PromptSource` protocol)."""

    def __init__(self, seed: int = 0, config: WorldConfig | None = None):
        self.seed = int(seed)
        self.config = config or WorldConfig()
        self.data: WorldData = build_world_data(self.seed, self.config)
        self.registry = CapabilityRegistry(DEFAULT_CAPABILITIES)
        self.capabilities: tuple[str, ...] = self.registry.names
        # every template (parsing / oracles), and the active ones: a styled template only in its style's world
        self.all_templates = TemplateLibrary.load(TEMPLATE_DIR, capabilities=self.capabilities)
        self.library = TemplateLibrary([t for t in self.all_templates
                                        if not t.style or t.style == self.config.style(t.capability)],
                                       capabilities=self.capabilities)
        self.task_library = TemplateLibrary.load(TASK_TEMPLATE_DIR,
                                                 capabilities=[s.name for s in TASK_SPECS + CHAIN_SPECS])
        for t in self.all_templates:
            if t.op not in OPS or OPS[t.op].capability != t.capability:
                raise ReadJaxError(f"template {t.id!r}: op {t.op!r} is not a {t.capability} op")
        for t in self.task_library:
            if t.op not in TASK_OPS or TASK_OPS[t.op].capability != t.capability:
                raise ReadJaxError(f"task template {t.id!r}: op {t.op!r} is not a {t.capability} op")
        self.sep = SEP
        self.scales: dict[str, DifficultyScale] = self._calibrate()

    def __repr__(self) -> str:
        return f"World(seed={self.seed}, capabilities={len(self.capabilities)}, tasks={len(self.task_names)})"

    # ------------------------------------------------------------------ examples
    def _op(self, template: Template) -> Op:
        return OPS[template.op] if template.op in OPS else TASK_OPS[template.op]

    def _raw(self, template: Template, slots: Mapping[str, str]) -> float:
        return raw_difficulty(self._op(template).factors(self.data, slots)) + template.bonus

    def _calibrate(self) -> dict[str, DifficultyScale]:
        pools: dict[str, list[float]] = {}
        for ci, c in enumerate(self.capabilities):
            rng = np.random.default_rng([self.seed, _CALIB, ci])
            temps = self.library.for_capability(c)
            pools[c] = []
            for _ in range(self.config.calibration_size):
                t = temps[int(rng.integers(len(temps)))]
                slots = self._op(t).sample(self.data, rng, dict(t.fixed))
                pools[c].append(self._raw(t, slots))
        return fit_scales(pools)

    def instantiate(self, template: Template | str, rng: np.random.Generator | int) -> Example:
        """One example of a template (capability or composite), deterministic in `rng`."""
        if isinstance(template, str):
            template = self.template(template)
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        op = self._op(template)
        slots = dict(template.fixed)
        slots.update(op.sample(self.data, rng, dict(template.fixed)))
        prompt = template.fill(slots)
        answer = op.solve(self.data, slots)
        if template.capability in self.scales:
            d, tier = self.scales[template.capability](self._raw(template, slots))
            return Example(prompt, answer, capability=template.capability, difficulty=d, template_id=template.id,
                           tier=tier, slots=slots)
        return Example(prompt, answer, template_id=template.id, task=template.capability, slots=slots)

    def request(self, op: str, key: str, **slots: str) -> str:
        """A capability request of ``op`` with these slot values, in one of the world's active templates of
        that op (those whose fixed slots agree), chosen by a stable hash of ``key``: a chained task's step
        is asked the way the capability's own requests are.  Without an active one (a style this preset
        does not use), any template of the op."""
        slots = {k: str(v) for k, v in slots.items()}

        def fits(t: Template) -> bool:
            return t.op == op and all(slots.get(k) == v for k, v in dict(t.fixed).items())

        candidates = [t for t in self.library if fits(t)] or [t for t in self.all_templates if fits(t)]
        if not candidates:
            raise ReadJaxError(f"no template of op {op!r} fits slots {sorted(slots)}")
        pick = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % len(candidates)
        return candidates[pick].fill(slots)

    def template(self, template_id: str) -> Template:
        try:
            return self.all_templates[template_id]
        except ReadJaxError:
            return self.task_library[template_id]

    def fill(self, template_id: str, **slots: str) -> str:
        """Prompt text of a template from explicit slot values."""
        return self.template(template_id).fill({k: str(v) for k, v in slots.items()})

    def _check_capability(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise ReadJaxError(f"unknown capability {capability!r}; known: {self.capabilities}")

    def sample(
        self,
        capability: str,
        n: int,
        seed: int | np.random.Generator = 0,
        difficulty: str | tuple[float, float] | None = None,
        template_id: str | None = None,
    ) -> list[Example]:
        """`n` examples of a capability (or of a task's composite templates, given a task name).

        `difficulty`: None (natural mix), a tier name ("easy" / "medium" / "hard"), or a
        closed range (lo, hi) of d_c; rejection-sampled (capabilities only).
        """
        if capability in self.capabilities:
            temps = self.library.for_capability(capability)
            stream = self.capabilities.index(capability)
        elif capability in self.composite_task_names + self.chained_task_names:
            temps = self.task_library.for_capability(capability)
            stream = (100 + self.composite_task_names.index(capability) if capability in self.composite_task_names
                      else 300 + self.chained_task_names.index(capability))
            if difficulty is not None:
                raise ReadJaxError("difficulty filters apply to capability examples only")
        else:
            raise ReadJaxError(f"unknown capability or task {capability!r}")
        if template_id is not None:
            temps = tuple(t for t in temps if t.id == template_id)
            if not temps:
                raise ReadJaxError(f"template {template_id!r} is not a {capability} template")
        if isinstance(difficulty, str) and difficulty not in TIERS:
            raise ReadJaxError(f"difficulty must be one of {TIERS}, a (lo, hi) range or None")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng([self.seed, _SAMPLE, stream, seed])
        weights = np.array([t.weight for t in temps])
        weights = weights / weights.sum()
        out = []
        for _ in range(n):
            for _ in range(_MAX_TRIES):
                ex = self.instantiate(temps[int(rng.choice(len(temps), p=weights))], rng)
                if difficulty is None:
                    break
                if isinstance(difficulty, str) and ex.tier == difficulty:
                    break
                if not isinstance(difficulty, str) and difficulty[0] <= ex.difficulty <= difficulty[1]:
                    break
            else:
                raise ReadJaxError(f"no {capability} example with difficulty {difficulty!r} in {_MAX_TRIES} tries")
            out.append(ex)
        return out

    # ------------------------------------------------------------------ solving / scoring
    def solve(self, prompt: str, capability: str | None = None) -> str:
        """Answer a capability prompt from its text alone (parse with the templates, then solve)."""
        parses = self.all_templates.parse(prompt, capability)
        answers = set()
        for t, slots in parses:
            try:
                answers.add(OPS[t.op].solve(self.data, slots))
            except (ReadJaxError, KeyError, ValueError, IndexError):
                continue
        if len(answers) != 1:
            raise ReadJaxError(f"prompt {prompt!r} has {len(answers)} solutions under the templates")
        return answers.pop()

    def oracle(self, example: Example | str) -> str:
        """Answer a composite-task prompt by composing component-capability solvers only: its
        `ChainPlan` with every step answered exactly (a workload request, one capability's example,
        by that capability's solver)."""
        if isinstance(example, Example) and example.task is not None and example.capability is not None:
            return self.solve(example.prompt, example.capability)
        prompt = example.prompt if isinstance(example, Example) else example
        parses = self.task_library.parse(prompt)
        answers = {TASK_PLANS[t.op].run(self, slots, self.solve)[1] for t, slots in parses}
        if len(answers) != 1:
            raise ReadJaxError(f"task prompt {prompt!r} has {len(answers)} oracle answers")
        return answers.pop()

    @staticmethod
    def score(pred: str, example: Example) -> float:
        """Exact match of the final answers after whitespace normalisation (case-sensitive): a rationale
        before the answer (`rationales.final_answer`) is neither required nor scored."""
        return exact_match(final_answer(pred), final_answer(example.answer))

    def rationale(self, example: Example) -> str:
        """The worked step behind a capability example's answer (`read_jax.worlds.rationales`)."""
        if example.capability is None or not example.template_id:
            raise ReadJaxError("rationales exist for capability examples only")
        return rationale(self.data, self.template(example.template_id).op, dict(example.slots))

    def with_rationale(self, example: Example) -> Example:
        """The example asked with the rationale mark and answered ``"<rationale>; <answer>"``."""
        return dataclasses.replace(example, prompt=cot_prompt(example.prompt),
                                   answer=with_rationale(self.rationale(example), example.answer))

    # ------------------------------------------------------------------ tasks
    @property
    def composite_task_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in TASK_SPECS)

    @property
    def workload_task_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in WORKLOAD_SPECS)

    @property
    def chained_task_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in CHAIN_SPECS)

    @property
    def task_names(self) -> tuple[str, ...]:
        """Composite tasks, workloads, then chained tasks."""
        return self.composite_task_names + self.workload_task_names + self.chained_task_names

    def plan(self, template_id: str) -> ChainPlan:
        """The capability requests a composite or chained task template's request decomposes into."""
        return TASK_PLANS[self.template(template_id).op]

    def _true_r(self, spec: TaskSpec | WorkloadSpec) -> np.ndarray:
        return self.registry.vector(spec.requirement, normalise=True)

    def _draw_unique(self, spec: TaskSpec | WorkloadSpec, rng: np.random.Generator, n: int, exclude: set[str]
                     ) -> list[Example]:
        """``n`` distinct examples of a task: its composite templates, or (a workload) capability
        examples with the capability drawn from the task's true r."""
        if isinstance(spec, WorkloadSpec):
            mix = self._true_r(spec)
            libs = [self.library.for_capability(c) for c in self.capabilities]

            def draw() -> Example:
                temps = libs[int(rng.choice(len(mix), p=mix))]
                return dataclasses.replace(self.instantiate(temps[int(rng.integers(len(temps)))], rng), task=spec.name)
        else:
            temps = self.task_library.for_capability(spec.name)

            def draw() -> Example:
                return self.instantiate(temps[int(rng.integers(len(temps)))], rng)
        out: list[Example] = []
        seen = set(exclude)
        for _ in range(n * 200):
            if len(out) == n:
                break
            ex = draw()
            if ex.prompt in seen:
                continue
            seen.add(ex.prompt)
            out.append(ex)
        if len(out) != n:
            raise ReadJaxError(f"task {spec.name!r}: could only draw {len(out)} distinct examples of {n}")
        return out

    @cached_property
    def tasks(self) -> tuple[Task, ...]:
        out = []
        for i, spec in enumerate(TASK_SPECS + WORKLOAD_SPECS + CHAIN_SPECS):  # appended: earlier tasks' streams stay
            ex_rng = np.random.default_rng([self.seed, _EXEMPLAR, i])
            exemplars = self._draw_unique(spec, ex_rng, 3, set())
            taken = {e.prompt for e in exemplars}
            dev = self._draw_unique(spec, np.random.default_rng([self.seed, _TASK, spec.dev_seed]),
                                    self.config.dev_size, taken)
            taken |= {e.prompt for e in dev}
            test = self._draw_unique(spec, np.random.default_rng([self.seed, _TASK, spec.test_seed]),
                                     self.config.test_size, taken)
            r = self._true_r(spec)
            card = TaskCard(
                name=spec.name,
                description=spec.description,
                input_format=spec.input_format,
                output_format=spec.output_format,
                exemplars=tuple((e.prompt, e.answer) for e in exemplars),
                dev_size=self.config.dev_size,
                test_size=self.config.test_size,
                dev_seed=spec.dev_seed,
                test_seed=spec.test_seed,
                stated_requirement=tuple(self.registry.as_dict(r).items()) if self.config.cards_state_requirement else None,
            )
            out.append(Task(card=card, dev=tuple(dev), test=tuple(test), true_r=r, scorer=self.score,
                            chain=self.chain if spec in CHAIN_SPECS else None))
        return tuple(out)

    @cached_property
    def chain(self) -> WorldChain:
        """How a chained task's requests are answered: its plan's capability requests, one by one."""
        return WorldChain(self)

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise ReadJaxError(f"unknown task {name!r}; known: {self.task_names}")

    def true_requirements(self) -> dict[str, np.ndarray]:
        return {t.name: t.true_r for t in self.tasks}

    def eval_prompts(self, workloads: bool = True, chained: bool = False) -> list[str]:
        """Every prompt of every task's dev and test split and card exemplars (composite tasks only
        without ``workloads``; chained tasks only with ``chained``: the recipes' training streams,
        which filter with this list, predate them).  A chained task's step prompts are
        in `leakage_filter`."""
        out = []
        for t in self.tasks:
            if (not workloads and t.name in self.workload_task_names) or (not chained and t.name in self.chained_task_names):
                continue
            out.extend(e.prompt for e in t.dev + t.test)
            out.extend(p for p, _ in t.card.exemplars)
        return out

    def leakage_filter(self, extra_prompts: Sequence[str] = ()) -> LeakageFilter:
        """Every evaluation prompt of every task plus ``extra_prompts``: what ReAD's generated data must never
        contain.  A chained task's requests are in it, its steps' capability requests are not: they are
        ordinary requests of a capability, and in the ``tiny`` preset 88 % of its knowledge questions (drawn
        as the capability draws them) are one, so keeping them out would leave little knowledge to distil."""
        return LeakageFilter([*self.eval_prompts(chained=True), *extra_prompts])

    # ------------------------------------------------------------------ suites and mixtures
    def probe_suite(self, n_per_capability: int = 32, seed: int = 0) -> dict[str, list[Example]]:
        """A fixed probe set per capability, stratified over tiers (easy/medium/hard ≈ 1/3 each)."""
        out = {}
        for ci, c in enumerate(self.capabilities):
            rng = np.random.default_rng([self.seed, _PROBE, seed, ci])
            sizes = [n_per_capability // 3] * 3
            sizes[1] += n_per_capability - sum(sizes)
            exs: list[Example] = []
            for tier, k in zip(TIERS, sizes):
                exs.extend(self.sample(c, k, rng, difficulty=tier))
            out[c] = exs
        return out

    def iter_mixture(
        self,
        seed: int = 0,
        task_share: float = 0.25,
        capability_weights: Mapping[str, float] | None = None,
        tasks: Sequence[str] | None = None,
        exclude: LeakageFilter | None = None,
        cot_share: float = 0.0,
    ) -> Iterator[Example]:
        """Endless teacher-training stream: capabilities ~ weights, composite tasks with `task_share`,
        a capability example asked for its rationale (`with_rationale`) with probability `cot_share`.

        No example repeats a composite task's evaluation prompt (dev, test, exemplars); `exclude`
        adds more prompts to keep out (e.g. a probe suite).  Workload tasks' prompts are not
        kept out: the shipped recipes' streams predate them, and the filter changes the stream
        (they are kept out of ReAD's generated data, see `prompt_sampler`).
        """
        if not (0.0 <= task_share <= 1.0) or not (0.0 <= cot_share <= 1.0):
            raise ReadJaxError("task_share and cot_share must be in [0, 1]")
        cw = self.registry.vector(capability_weights or {c: 1.0 for c in self.capabilities}, normalise=True)
        task_list = list(tasks if tasks is not None else self.composite_task_names)
        for t in task_list:
            if t not in self.composite_task_names:
                raise ReadJaxError(f"unknown composite task {t!r}")
        if not task_list:
            task_share = 0.0
        leak = LeakageFilter(self.eval_prompts(workloads=False))
        rng = np.random.default_rng([self.seed, _MIX, seed])
        cap_temps = [self.library.for_capability(c) for c in self.capabilities]
        task_temps = [self.task_library.for_capability(t) for t in task_list]
        while True:
            if rng.random() < task_share:
                temps = task_temps[int(rng.integers(len(task_temps)))]
            else:
                temps = cap_temps[int(rng.choice(len(cw), p=cw))]
            # a leaked prompt is redrawn from the same source, so source shares stay as asked
            for _ in range(_MAX_TRIES):
                ex = self.instantiate(temps[int(rng.integers(len(temps)))], rng)
                if not (leak.is_leaked(ex.prompt) or (exclude is not None and exclude.is_leaked(ex.prompt))):
                    # drawn only when asked for, so the streams of recipes without rationales stay as they were
                    yield self.with_rationale(ex) if cot_share and ex.capability and rng.random() < cot_share else ex
                    break
            else:
                raise ReadJaxError(f"every draw of {temps[0].capability!r} hits an excluded prompt")

    def mixture(self, n: int, seed: int = 0, **kwargs) -> list[Example]:
        """The first `n` examples of `iter_mixture(seed, **kwargs)`."""
        it = self.iter_mixture(seed, **kwargs)
        return [next(it) for _ in range(n)]

    # ------------------------------------------------------------------ ReAD plumbing
    def prompt_sampler(
        self, seed: int = 0, config: SamplerConfig = SamplerConfig(), extra_eval_prompts: Sequence[str] = ()
    ) -> PromptSampler:
        """ReAD's capability-targeted sampler over this world, with the task leakage filter."""
        return PromptSampler(self, seed=seed, leakage=self.leakage_filter(extra_eval_prompts), config=config)

    @staticmethod
    def tokenizer(model_max_length: int = 256):
        return build_tokenizer(model_max_length)

    def describe(self) -> str:
        """Human-readable summary: KB, lexicon sizes, one example per template."""
        lines = [repr(self), f"entities: {' '.join(self.data.entities)}", f"cities: {' '.join(self.data.cities)}"]
        rng = np.random.default_rng([self.seed, 99])
        for t in (*self.library, *self.task_library):
            ex = self.instantiate(t, rng)
            lines.append(f"[{t.capability}/{t.id}] {ex.prompt!r} -> {ex.answer!r}")
        return "\n".join(lines)
