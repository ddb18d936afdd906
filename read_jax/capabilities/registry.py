"""Capability registry, examples, task cards and tasks (method.md §1).

Everything here is plain, frozen and validated on construction, so that a
malformed capability list or task card fails where it is written rather than
deep inside the loop.  Nothing here needs a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from read_jax.errors import ReadJaxError

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "general_knowledge",
    "steerability",
    "reasoning",
    "math",
    "code",
    "tool_use",
    "long_context",
    "multilingual",
)

TIERS: tuple[str, ...] = ("easy", "medium", "hard")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ReadJaxError(f"{kind} name {name!r} must match {_NAME.pattern}")


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class CapabilityRegistry:
    """An ordered list of capability names; the order fixes every vector's layout."""

    names: tuple[str, ...] = DEFAULT_CAPABILITIES

    def __post_init__(self) -> None:
        names = tuple(self.names)
        object.__setattr__(self, "names", names)
        if not names:
            raise ReadJaxError("a capability registry needs at least one capability")
        for n in names:
            _check_name("capability", n)
        if len(set(names)) != len(names):
            raise ReadJaxError(f"duplicate capability names in {names}")

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ReadJaxError(f"unknown capability {name!r}; known: {self.names}") from None

    def vector(self, mapping: Mapping[str, float], *, normalise: bool = False) -> np.ndarray:
        """Dense float64 vector in registry order from a {name: value} mapping (missing = 0)."""
        v = np.zeros(len(self), dtype=np.float64)
        for k, x in mapping.items():
            v[self.index(k)] = float(x)
        if normalise:
            s = v.sum()
            if s <= 0:
                raise ReadJaxError(f"cannot normalise a vector with sum {s}")
            v = v / s
        return v

    def as_dict(self, vec: Sequence[float]) -> dict[str, float]:
        vec = np.asarray(vec, dtype=np.float64).reshape(-1)
        if vec.shape[0] != len(self):
            raise ReadJaxError(f"vector of length {vec.shape[0]} for {len(self)} capabilities")
        return {n: float(x) for n, x in zip(self.names, vec)}

    def check_simplex(self, w: Sequence[float], *, atol: float = 1e-6) -> np.ndarray:
        """Validate an allocation / requirement vector: right length, >= 0, sums to 1."""
        w = np.asarray(w, dtype=np.float64).reshape(-1)
        if w.shape[0] != len(self):
            raise ReadJaxError(f"allocation of length {w.shape[0]} for {len(self)} capabilities")
        if not np.all(np.isfinite(w)) or np.any(w < -atol):
            raise ReadJaxError(f"allocation must be finite and non-negative, got {w}")
        if abs(w.sum() - 1.0) > atol:
            raise ReadJaxError(f"allocation must sum to 1, got {w.sum()}")
        return np.clip(w, 0.0, None) / np.clip(w, 0.0, None).sum()


# --------------------------------------------------------------------------- scoring
_WS = re.compile(r"\s+")


def normalise_answer(text: str) -> str:
    """Whitespace-collapsed, stripped answer.  Case is kept: case is part of some skills."""
    return _WS.sub(" ", text).strip()


def exact_match(pred: str, gold: str) -> float:
    """1.0 when the normalised prediction equals the normalised reference, else 0.0."""
    return float(normalise_answer(pred) == normalise_answer(gold))


# --------------------------------------------------------------------------- examples
@dataclass(frozen=True)
class Example:
    """One prompt with its reference answer.

    `capability` is set for capability examples, `task` for downstream-task examples.
    `difficulty` is d_c(x) in [0, 1] and `tier` its tertile (capability examples only).
    `slots` keeps the typed slot values the prompt was filled from, as sorted pairs.
    Benchmark items also carry `id` (as in the source data), `choices` (multiple-choice
    options; the gold one's index in ``info["gold"]``) and `info`: whatever the task's
    metric needs to score a completion (unit tests, instruction checks, a tool call).
    """

    prompt: str
    answer: str
    capability: str | None = None
    difficulty: float | None = None
    template_id: str = ""
    tier: str | None = None
    task: str | None = None
    slots: tuple[tuple[str, str], ...] = ()
    id: str = ""
    choices: tuple[str, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(str(c) for c in self.choices))
        if not isinstance(self.prompt, str) or not isinstance(self.answer, str):
            raise ReadJaxError("prompt and answer must be strings")
        if self.tier is not None and self.tier not in TIERS:
            raise ReadJaxError(f"tier must be one of {TIERS}, got {self.tier!r}")
        if self.difficulty is not None and not (0.0 <= self.difficulty <= 1.0):
            raise ReadJaxError(f"difficulty must lie in [0, 1], got {self.difficulty}")
        if isinstance(self.slots, Mapping):
            object.__setattr__(self, "slots", tuple(sorted(self.slots.items())))

    @property
    def slot_dict(self) -> dict[str, str]:
        return dict(self.slots)

    @property
    def source(self) -> str:
        """Capability or task name this example belongs to."""
        return self.task if self.task is not None else (self.capability or "")

    def text(self, sep: str) -> str:
        return self.prompt + sep + self.answer


# --------------------------------------------------------------------------- task cards
def _check_eval_type(card: str, eval_type: str) -> None:
    from read_jax.evals.metrics import get_metric  # the metric registry; evals imports this module

    try:
        get_metric(eval_type)
    except ReadJaxError as err:
        raise ReadJaxError(f"task card {card!r}: eval_type: {err}") from None


@dataclass(frozen=True)
class TaskCard:
    """What a user can say about a downstream task (method.md §1).

    `stated_requirement`, when present, is the card's own statement of r_τ as
    (capability, weight) pairs; ReAD then reads r from the card (method.md §2).
    """

    name: str
    description: str
    input_format: str
    output_format: str
    exemplars: tuple[tuple[str, str], ...]
    dev_size: int
    test_size: int
    dev_seed: int
    test_seed: int
    eval_type: str = "exact_match"
    stated_requirement: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self) -> None:
        _check_name("task", self.name)
        for f in ("description", "input_format", "output_format"):
            if not isinstance(getattr(self, f), str) or not getattr(self, f).strip():
                raise ReadJaxError(f"task card {self.name!r}: {f} must be a non-empty string")
        ex = tuple((str(p), str(a)) for p, a in self.exemplars)
        object.__setattr__(self, "exemplars", ex)
        _check_eval_type(self.name, self.eval_type)
        if self.dev_size <= 0 or self.test_size <= 0:
            raise ReadJaxError(f"task card {self.name!r}: split sizes must be positive")
        if self.dev_seed == self.test_seed:
            raise ReadJaxError(f"task card {self.name!r}: dev and test seeds must differ")
        if self.stated_requirement is not None:
            req = self.stated_requirement
            if isinstance(req, Mapping):
                req = tuple(req.items())
            req = tuple((str(k), float(v)) for k, v in req)
            if not req or any(v < 0 for _, v in req) or sum(v for _, v in req) <= 0:
                raise ReadJaxError(f"task card {self.name!r}: stated requirement must be >= 0 with positive sum")
            object.__setattr__(self, "stated_requirement", req)

    def requirement(self, registry: CapabilityRegistry) -> np.ndarray | None:
        """r_τ from the card (normalised onto the simplex), or None when the card is silent."""
        if self.stated_requirement is None:
            return None
        return registry.vector(dict(self.stated_requirement), normalise=True)

    def text(self) -> str:
        """Canonical card text (what an encoder sees).  The stated requirement is left out."""
        lines = [
            f"task: {self.name}",
            f"description: {self.description}",
            f"input: {self.input_format}",
            f"output: {self.output_format}",
            f"eval: {self.eval_type}",
        ]
        for p, a in self.exemplars:
            lines.append(f"example: {p} -> {a}")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)  # identity equality: true_r is an array
class Task:
    """A downstream task: card, fixed dev/test splits, utility = mean score.

    `true_r` is the world's ground truth requirement (None for tasks from outside a
    world); ReAD must not read it.  `scorer(pred, example) -> float` in [0, 1] scores a
    generated answer; `metric` (a `read_jax.evals.metrics.Metric`), when given, replaces it
    and may instead score by log-likelihood of the example's choices (``metric.kind``).
    `chain` (a `read_jax.capabilities.chain.TaskChain`), when given, says that a request is answered
    as a chain of capability requests whose answers assemble the final one (``metric_kind`` "chain").
    """

    card: TaskCard
    dev: tuple[Example, ...]
    test: tuple[Example, ...]
    true_r: np.ndarray | None = None
    scorer: Callable[[str, Example], float] = field(default=lambda pred, ex: exact_match(pred, ex.answer))
    metric: Any = None
    chain: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dev", tuple(self.dev))
        object.__setattr__(self, "test", tuple(self.test))
        if self.chain is not None and self.metric is not None and self.metric.kind != "generate":
            raise ReadJaxError(f"task {self.card.name!r}: a chained task is scored on its assembled answer; "
                               f"metric {self.metric.name!r} scores {self.metric.kind!r}")
        if len(self.dev) != self.card.dev_size or len(self.test) != self.card.test_size:
            raise ReadJaxError(
                f"task {self.card.name!r}: splits have {len(self.dev)}/{len(self.test)} examples,"
                f" card says {self.card.dev_size}/{self.card.test_size}"
            )

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def metric_kind(self) -> str:
        """"generate" (score a greedy completion), "chain" (score the answer a chain of greedy
        completions assembles) or "choice" (log-likelihood of each choice)."""
        if self.chain is not None:
            return "chain"
        return "generate" if self.metric is None else self.metric.kind

    def score(self, pred: str, example: Example) -> float:
        if self.metric is not None:
            return float(self.metric.score(pred, example))
        return float(self.scorer(pred, example))

    def split(self, name: str) -> tuple[Example, ...]:
        if name not in ("dev", "test"):
            raise ReadJaxError(f"split must be 'dev' or 'test', got {name!r}")
        return self.dev if name == "dev" else self.test

    def utility(self, preds: Sequence[str], split: str = "dev") -> float:
        """U_τ: mean score of `preds` (aligned with the split's examples)."""
        exs = self.split(split)
        if len(preds) != len(exs):
            raise ReadJaxError(f"{len(preds)} predictions for {len(exs)} {split} examples")
        return float(np.mean([self.score(p, e) for p, e in zip(preds, exs)]))
