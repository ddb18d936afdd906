"""Benchmark task cards: a YAML file of cards -> validated `CardSpec`s -> `Task`s (method.md §1).

The file has the official artifact's shape (``configs/task_cards.yaml``); keys marked * are
read_jax's optional extras::

    capabilities: [code, math, ...]   # * the registry requirements may name (default: DEFAULT_CAPABILITIES)
    data_dir: DIR                     # * TFDS data_dir for every card (relative to this file)
    tasks:
      NAME:
        capability: code              # the task's main capability
        description: ...
        input_format: ...
        output_format: ...
        exemplars: [{input: ..., output: ...}]        # optional
        dev:  {source: local|humaneval|hf|tfds, path: FILE | dataset: ID, subset: ..., split: ...,
               format: humaneval_jsonl|gsm8k_jsonl|generic_jsonl|mc, limit: N, seed: S}
        test: {...same keys...}
        eval_type: humaneval_pass@1   # a metric name or alias (read_jax.evals.metrics)
        requirement_vector: {code: 0.8, reasoning: 0.2}  # optional: the card's stated r_τ
        max_new_tokens: 512           # * generation length for this task
        prompt_template: "...{input}..."  # * wraps each item's prompt (e.g. an instruction for instruct models)
        data_dir: DIR                 # * TFDS data_dir for this card
        profiling_fraction: 0.1       # * share of the non-test data used as the profiling split

Every error names the file and the field (``FILE: tasks.NAME.FIELD: ...``).

Splits (`build_task`), all deterministic given the sources' seeds:

1. **test**: the test source's items; with its ``limit``, a seeded sample of that many, kept in
   source order;
2. **non-test pool**: the dev source's items minus every test item.  When dev and test name the
   same data (the artifact's HumanEval card points both at one file) the test items are removed
   by id, so the profiling split never holds a test item; items whose prompt equals a test prompt
   are removed whatever the source;
3. **profiling split** (the task's ``dev``): ``profiling_fraction`` (10 %) of the pool (of at
   most the dev ``limit`` items of it), at least one item, drawn with the dev seed;
4. `load_task`'s ``limit`` keeps the first N items of the test split (quick runs).

The test draw uses the test seed, or the dev seed + 1 when the card gives both the same seed,
so the two draws are independent; `TaskCard` records the seeds used.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import yaml

from read_jax.capabilities.registry import _NAME, DEFAULT_CAPABILITIES, Example, Task, TaskCard
from read_jax.errors import ReadJaxError
from read_jax.evals import loaders
from read_jax.evals.metrics import Metric, get_metric

SOURCES = ("local", "humaneval", "hf", "tfds")
DEFAULT_PROFILING_FRACTION = 0.1


class _At:
    """Where a value sits in a cards file, for one-line errors (``FILE: tasks.NAME.FIELD: ...``)."""

    def __init__(self, file: Path | str, path: str = ""):
        self.file, self.path = file, path

    def __truediv__(self, key: object) -> "_At":
        return _At(self.file, f"{self.path}.{key}" if self.path else str(key))

    def fail(self, msg: str) -> NoReturn:
        raise ReadJaxError(f"{self.file}: {self.path}: {msg}" if self.path else f"{self.file}: {msg}")


def _mapping(at: _At, value: Any, required: Sequence[str] = (), optional: Sequence[str] | None = None
             ) -> Mapping[str, Any]:
    """A mapping with all ``required`` keys and, unless ``optional`` is None, no other key."""
    if not isinstance(value, Mapping):
        at.fail(f"expected a mapping, got {type(value).__name__}")
    for key in value if optional is not None else ():
        if key not in required and key not in optional:
            at.fail(f"unknown key {key!r} (known: {', '.join(list(required) + list(optional))})")
    for key in required:
        if key not in value:
            (at / key).fail("missing")
    return value


def _str(at: _At, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        at.fail(f"expected a non-empty string, got {value!r}")
    return value


def _int(at: _At, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        at.fail(f"expected an integer >= {minimum}, got {value!r}")
    return value


def _opt(at: _At, raw: Mapping[str, Any], key: str, parse, *args: Any) -> Any:
    """``raw[key]`` parsed (``parse(at / key, value, *args)``), or None when absent or null."""
    return None if raw.get(key) is None else parse(at / key, raw[key], *args)


# --------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class SourceSpec:
    """Where one split's records come from and how they read."""

    source: str
    format: str
    path: str | None = None
    dataset: str | None = None
    subset: str | None = None
    split: str | None = None
    limit: int | None = None
    seed: int | None = None

    KEYS = ("source", "path", "dataset", "subset", "split", "format", "limit", "seed")

    @classmethod
    def parse(cls, at: _At, raw: Any) -> "SourceSpec":
        raw = _mapping(at, raw, ("source",), cls.KEYS[1:])
        source = raw["source"]
        if source not in SOURCES:
            (at / "source").fail(f"unknown source {source!r} (known: {', '.join(SOURCES)})")
        fmt = raw.get("format", "humaneval_jsonl" if source == "humaneval" else None)
        if fmt is None:
            (at / "format").fail("missing")
        if fmt not in loaders.FORMATS:
            (at / "format").fail(f"unknown format {fmt!r} (known: {', '.join(loaders.FORMATS)})")
        if fmt == "mc" and source not in ("hf", "tfds"):
            (at / "format").fail("format mc reads TFDS multiple-choice sets (source hf or tfds); "
                                 "use generic_jsonl with choices for files")
        needs = {"local": ("path",), "hf": ("dataset", "split"), "tfds": ("dataset", "split")}.get(source, ())
        for key in needs:
            if key not in raw:
                (at / key).fail(f"missing (source {source} needs {' and '.join(needs)})")
        for key, other in (("path", ("local",)), ("dataset", ("hf", "tfds"))):
            if key in raw and source not in other:
                (at / key).fail(f"not used by source {source}")
        text = {k: _opt(at, raw, k, _str) for k in ("path", "dataset", "subset", "split")}
        return cls(source=source, format=fmt, **text, limit=_opt(at, raw, "limit", _int, 1),
                   seed=_opt(at, raw, "seed", _int, 0))

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.KEYS if getattr(self, k) is not None}

    def identity(self, base: Path) -> tuple:
        """What data this names, so two sources naming one dataset are recognised."""
        if self.source in ("local", "humaneval"):
            path = loaders.humaneval_path() if self.source == "humaneval" else base / self.path
            return ("file", str(Path(path).resolve()))
        target = loaders.tfds_target(self.dataset, self.subset, from_hf=self.source == "hf")
        return ("tfds", target.builder, target.language, self.split)

    def read(self, base: Path, data_dir: str | None) -> list[Example]:
        """This source's items as `Example`s (files relative to ``base``, the cards file's folder)."""
        if self.source in ("local", "humaneval"):
            records = loaders.read_jsonl(self.identity(base)[1])
        else:
            target = loaders.tfds_target(self.dataset, self.subset, from_hf=self.source == "hf")
            records = loaders.read_tfds(target, self.split, data_dir)
        return loaders.to_examples(records, self.format)


# --------------------------------------------------------------------------- cards
TASK_REQUIRED = ("capability", "description", "input_format", "output_format", "dev", "test", "eval_type")
TASK_OPTIONAL = ("exemplars", "requirement_vector", "max_new_tokens", "prompt_template", "data_dir",
                 "profiling_fraction")


@dataclass(frozen=True)
class CardSpec:
    """One validated task card as written in the file (`to_dict` gives the file's mapping back)."""

    name: str
    capability: str
    description: str
    input_format: str
    output_format: str
    dev: SourceSpec
    test: SourceSpec
    eval_type: str
    exemplars: tuple[tuple[str, str], ...] = ()
    requirement_vector: tuple[tuple[str, float], ...] | None = None
    max_new_tokens: int | None = None
    prompt_template: str | None = None
    data_dir: str | None = None
    profiling_fraction: float | None = None
    file: Path = field(default=Path("."), compare=False)

    @property
    def metric(self) -> Metric:
        return get_metric(self.eval_type)

    @classmethod
    def parse(cls, at: _At, name: str, raw: Any, capabilities: Sequence[str]) -> "CardSpec":
        if not isinstance(name, str) or not _NAME.match(name):
            at.fail(f"task name must match {_NAME.pattern}")
        raw = _mapping(at, raw, TASK_REQUIRED, TASK_OPTIONAL)
        known = f"known: {', '.join(capabilities)}"
        capability = _str(at / "capability", raw["capability"])
        if capability not in capabilities:
            (at / "capability").fail(f"unknown capability {capability!r} ({known})")
        try:
            get_metric(raw["eval_type"])
        except ReadJaxError as err:
            (at / "eval_type").fail(str(err))
        exemplars = []
        for i, ex in enumerate(raw.get("exemplars") or ()):
            ex = _mapping(at / f"exemplars[{i}]", ex, ("input", "output"), ())
            exemplars.append((_str(at / f"exemplars[{i}].input", ex["input"]), str(ex["output"])))
        requirement = None
        if raw.get("requirement_vector") is not None:
            req_at = at / "requirement_vector"
            req = _mapping(req_at, raw["requirement_vector"])
            for cap, w in req.items():
                if cap not in capabilities:
                    (req_at / cap).fail(f"unknown capability {cap!r} ({known})")
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0:
                    (req_at / cap).fail(f"weight must be a number >= 0, got {w!r}")
            if sum(req.values()) <= 0:
                req_at.fail("weights must have a positive sum")
            requirement = tuple((str(c), float(w)) for c, w in req.items())
        template = raw.get("prompt_template")
        if template is not None and "{input}" not in _str(at / "prompt_template", template):
            (at / "prompt_template").fail("must contain {input} (where the item's prompt goes)")
        fraction = raw.get("profiling_fraction")
        if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                                     or not 0 < fraction <= 1):
            (at / "profiling_fraction").fail(f"must be a number in (0, 1], got {fraction!r}")
        return cls(
            name=name, capability=capability,
            **{k: _str(at / k, raw[k]) for k in ("description", "input_format", "output_format")},
            dev=SourceSpec.parse(at / "dev", raw["dev"]), test=SourceSpec.parse(at / "test", raw["test"]),
            eval_type=raw["eval_type"], exemplars=tuple(exemplars), requirement_vector=requirement,
            max_new_tokens=_opt(at, raw, "max_new_tokens", _int, 1), prompt_template=template,
            data_dir=_opt(at, raw, "data_dir", _str),
            profiling_fraction=None if fraction is None else float(fraction), file=Path(at.file),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("name", "file") or value is None or (f.name == "exemplars" and not value):
                continue
            if isinstance(value, SourceSpec):
                value = value.to_dict()
            elif f.name == "exemplars":
                value = [{"input": i, "output": o} for i, o in value]
            elif f.name == "requirement_vector":
                value = dict(value)
            out[f.name] = value
        return out

    def task_card(self, dev_size: int, test_size: int) -> TaskCard:
        dev_seed, test_seed = split_seeds(self)
        return TaskCard(name=self.name, description=self.description, input_format=self.input_format,
                        output_format=self.output_format, exemplars=self.exemplars, dev_size=dev_size,
                        test_size=test_size, dev_seed=dev_seed, test_seed=test_seed, eval_type=self.eval_type,
                        stated_requirement=self.requirement_vector)


@dataclass(frozen=True)
class CardFile:
    """A whole cards file: its cards by name and the file-level defaults."""

    path: Path
    tasks: dict[str, CardSpec]
    capabilities: tuple[str, ...] | None = None
    data_dir: str | None = None

    def card(self, name: str) -> CardSpec:
        if name not in self.tasks:
            raise ReadJaxError(f"{self.path}: tasks.{name}: no such task (known: {', '.join(self.tasks)})")
        return self.tasks[name]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.capabilities is not None:
            out["capabilities"] = list(self.capabilities)
        if self.data_dir is not None:
            out["data_dir"] = self.data_dir
        out["tasks"] = {name: card.to_dict() for name, card in self.tasks.items()}
        return out

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100))
        return path


def read_cards(path: str | os.PathLike, capabilities: Sequence[str] | None = None) -> CardFile:
    """Parse and validate a cards file.  Requirements may name ``capabilities`` (default: the
    file's own ``capabilities`` list, else `DEFAULT_CAPABILITIES`)."""
    path = Path(path)
    at = _At(path)
    if not path.is_file():
        at.fail("cards file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        at.fail(f"invalid YAML{where} ({getattr(err, 'problem', None) or err})")
    raw = _mapping(at, raw, ("tasks",), ("capabilities", "data_dir"))
    own = raw.get("capabilities")
    if own is not None and (not isinstance(own, list) or not own or not all(isinstance(c, str) for c in own)):
        (at / "capabilities").fail("expected a non-empty list of capability names")
    caps = tuple(capabilities or own or DEFAULT_CAPABILITIES)
    tasks = _mapping(at / "tasks", raw["tasks"])
    if not tasks:
        (at / "tasks").fail("no tasks")
    return CardFile(
        path=path,
        tasks={name: CardSpec.parse(at / "tasks" / name, name, card, caps) for name, card in tasks.items()},
        capabilities=None if own is None else tuple(own),
        data_dir=_opt(at, raw, "data_dir", _str),
    )


# --------------------------------------------------------------------------- splits -> Task
def split_seeds(card: CardSpec) -> tuple[int, int]:
    """(profiling seed, test seed); the test seed moves off the dev seed when the card repeats it."""
    dev = card.dev.seed or 0
    test = card.test.seed or 0
    return dev, test if test != dev else dev + 1


def _sample(n: int, k: int | None, seed: int) -> list[int]:
    """``k`` of ``range(n)`` drawn with ``seed``, in ascending order (all of them when k is None)."""
    if k is None or k >= n:
        return list(range(n))
    return sorted(int(i) for i in np.random.default_rng(seed).permutation(n)[:k])


def _with_template(examples: Sequence[Example], template: str | None, task: str) -> tuple[Example, ...]:
    """Examples tagged with their task, each prompt wrapped in the card's ``prompt_template``."""
    return tuple(dataclasses.replace(e, task=task, prompt=e.prompt if template is None
                                     else template.replace("{input}", e.prompt)) for e in examples)


def resolve_data_dir(card: CardSpec, cards: CardFile, data_dir: str | os.PathLike | None) -> str | None:
    """TFDS data_dir: the explicit one, else the card's, else the file's (both relative to the
    cards file), else ``$TFDS_DATA_DIR``, else TFDS's default (None)."""
    if data_dir:
        return str(data_dir)
    given = card.data_dir or cards.data_dir
    if given:
        return str(cards.path.parent / given)
    return loaders.default_data_dir(None)


def build_task(cards: CardFile, name: str, *, data_dir: str | os.PathLike | None = None,
               profiling_fraction: float | None = None, limit: int | None = None) -> Task:
    """The card's `Task`: profiling split as ``dev``, test split as ``test`` (see the module doc)."""
    card = cards.card(name)
    at = _At(cards.path, f"tasks.{name}")
    if limit is not None and limit < 1:
        raise ReadJaxError(f"limit must be >= 1, got {limit}")
    if profiling_fraction is not None and not 0 < profiling_fraction <= 1:
        raise ReadJaxError(f"profiling_fraction must lie in (0, 1], got {profiling_fraction}")
    base, ddir = cards.path.parent, resolve_data_dir(card, cards, data_dir)
    dev_seed, test_seed = split_seeds(card)

    test_items = card.test.read(base, ddir)
    test = [test_items[i] for i in _sample(len(test_items), card.test.limit, test_seed)]
    if not test:
        (at / "test").fail("the test source has no items")
    same_data = card.dev.identity(base) == card.test.identity(base)
    dev_items = test_items if same_data else card.dev.read(base, ddir)
    test_ids = {e.id for e in test} if same_data else set()
    test_prompts = {e.prompt for e in test}
    pool = [e for e in dev_items if e.id not in test_ids and e.prompt not in test_prompts]
    if not pool:
        (at / "dev").fail(f"no items left once the {len(test)} test items are removed; give test a smaller "
                          "limit or point dev at other data")
    fraction = profiling_fraction or card.profiling_fraction or DEFAULT_PROFILING_FRACTION
    n_pool = min(card.dev.limit or len(pool), len(pool))
    dev = [pool[i] for i in _sample(len(pool), max(1, int(round(fraction * n_pool))), dev_seed)]
    if limit is not None:
        test = test[:limit]

    metric = get_metric(card.eval_type)
    if metric.kind == "choice":
        for ex in dev + test:
            if len(ex.choices) < 2:
                (at / "eval_type").fail(f"{card.eval_type} scores choices, but item {ex.id!r} has none "
                                        f"(format {card.test.format})")
    dev_t, test_t = _with_template(dev, card.prompt_template, name), _with_template(test, card.prompt_template, name)
    return Task(card=card.task_card(len(dev_t), len(test_t)), dev=dev_t, test=test_t, metric=metric)


def load_task(cards_path: str | os.PathLike, name: str, *, data_dir: str | os.PathLike | None = None,
              profiling_fraction: float | None = None, limit: int | None = None,
              capabilities: Sequence[str] | None = None) -> Task:
    """Read a cards file and build one task (``profiling_fraction``: default the card's, else 0.1;
    ``limit``: keep the first N test items)."""
    return build_task(read_cards(cards_path, capabilities), name, data_dir=data_dir,
                      profiling_fraction=profiling_fraction, limit=limit)
