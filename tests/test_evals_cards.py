"""Task cards: both file shapes round-trip, every bad card is one line naming file and field,
and the profiling split is 10 % of the non-test data, deterministic and disjoint from test."""

import json
from pathlib import Path

import pytest
import yaml

from read_jax.errors import ReadJaxError
from read_jax.evals.cards import read_cards, load_task
from read_jax.evals.metrics import get_metric

CARDS_DIR = Path(__file__).resolve().parents[1] / "experiments" / "cards"


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def qa_rows(prefix: str, n: int):
    return [{"id": f"{prefix}{i}", "input": f"{prefix} question {i}", "output": f"answer {i}"} for i in range(n)]


def artifact_card(**over):
    """A card with only the official artifact's keys."""
    card = {
        "capability": "math",
        "description": "Answer a question.",
        "input_format": "A question.",
        "output_format": "The answer.",
        "exemplars": [{"input": "1 + 1?", "output": "2"}],
        "dev": {"source": "local", "path": "train.jsonl", "format": "generic_jsonl", "seed": 3},
        "test": {"source": "local", "path": "test.jsonl", "format": "generic_jsonl", "limit": 30, "seed": 4},
        "eval_type": "exact_match",
        "requirement_vector": {"math": 0.75, "reasoning": 0.25},
    }
    card.update(over)
    return card


def write_cards(tmp_path: Path, tasks: dict, name: str = "cards.yaml", **top) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**top, "tasks": tasks}, sort_keys=False))
    return path


@pytest.fixture
def data(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", qa_rows("train", 200))
    write_jsonl(tmp_path / "test.jsonl", qa_rows("test", 50))
    return tmp_path


EXTRA = {"max_new_tokens": 64, "prompt_template": "Answer briefly.\n\n{input}", "data_dir": "tfds",
         "profiling_fraction": 0.2}


@pytest.mark.parametrize("card", [artifact_card(), artifact_card(**EXTRA)], ids=["artifact", "read_jax"])
def test_cards_round_trip(tmp_path, card):
    path = write_cards(tmp_path, {"qa": card})
    cards = read_cards(path)
    assert cards.to_dict() == {"tasks": {"qa": card}}
    again = read_cards(cards.write(tmp_path / "again.yaml"))
    assert again.tasks == cards.tasks
    assert again.tasks["qa"].requirement_vector == (("math", 0.75), ("reasoning", 0.25))


def test_top_level_capabilities_and_data_dir_round_trip(tmp_path):
    card = artifact_card(capability="poetry", requirement_vector={"poetry": 1.0})
    path = write_cards(tmp_path, {"qa": card}, capabilities=["poetry", "math"], data_dir="tfds")
    cards = read_cards(path)
    assert cards.capabilities == ("poetry", "math") and cards.data_dir == "tfds"
    assert read_cards(cards.write(tmp_path / "again.yaml")).to_dict() == cards.to_dict()


def _drop(card, key):
    return {k: v for k, v in card.items() if k != key}


BAD_CARDS = {
    "missing field": (_drop(artifact_card(), "description"), r"tasks\.qa\.description: missing"),
    "unknown key": (artifact_card(colour="red"), r"tasks\.qa: unknown key 'colour'"),
    "unknown eval_type": (artifact_card(eval_type="bleu_9000"), r"tasks\.qa\.eval_type: unknown eval_type 'bleu_9000'"),
    "unknown format": (artifact_card(dev={"source": "local", "path": "t.jsonl", "format": "csv"}),
                       r"tasks\.qa\.dev\.format: unknown format 'csv'"),
    "unknown source": (artifact_card(test={"source": "ftp", "format": "generic_jsonl"}),
                       r"tasks\.qa\.test\.source: unknown source 'ftp'"),
    "unknown capability": (artifact_card(requirement_vector={"math": 0.5, "telepathy": 0.5}),
                           r"tasks\.qa\.requirement_vector\.telepathy: unknown capability 'telepathy'"),
    "unknown main capability": (artifact_card(capability="juggling"), r"tasks\.qa\.capability: unknown capability"),
    "negative weight": (artifact_card(requirement_vector={"math": -1}), r"requirement_vector\.math: weight"),
    "bad limit": (artifact_card(test={"source": "local", "path": "t.jsonl", "format": "generic_jsonl", "limit": 0}),
                  r"tasks\.qa\.test\.limit: expected an integer >= 1"),
    "missing path": (artifact_card(dev={"source": "local", "format": "generic_jsonl"}),
                     r"tasks\.qa\.dev\.path: missing"),
    "hf without split": (artifact_card(dev={"source": "hf", "dataset": "gsm8k", "format": "gsm8k_jsonl"}),
                         r"tasks\.qa\.dev\.split: missing"),
    "mc on a file": (artifact_card(dev={"source": "local", "path": "t.jsonl", "format": "mc"}),
                     r"tasks\.qa\.dev\.format: format mc reads TFDS"),
    "template without input": (artifact_card(prompt_template="Answer."), r"tasks\.qa\.prompt_template: must contain"),
    "bad exemplar": (artifact_card(exemplars=[{"input": "x"}]), r"tasks\.qa\.exemplars\[0\]\.output: missing"),
    "bad fraction": (artifact_card(profiling_fraction=1.5), r"tasks\.qa\.profiling_fraction: must be"),
    "bad task name": (None, r"tasks\.Bad-Name: task name must match"),
}


@pytest.mark.parametrize("case", list(BAD_CARDS))
def test_bad_card_is_one_line_naming_file_and_field(tmp_path, case):
    card, pattern = BAD_CARDS[case]
    tasks = {"Bad-Name": artifact_card()} if card is None else {"qa": card}
    path = write_cards(tmp_path, tasks)
    with pytest.raises(ReadJaxError, match=pattern) as err:
        read_cards(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ")


@pytest.mark.parametrize("text, pattern", [
    ("tasks: [", r"invalid YAML"),
    ("cards: {}", r"unknown key 'cards'"),
    ("capabilities: []\ntasks: {}", r"capabilities: expected a non-empty list"),
    ("tasks: {}", r"tasks: no tasks"),
])
def test_bad_file_is_one_line(tmp_path, text, pattern):
    path = tmp_path / "cards.yaml"
    path.write_text(text)
    with pytest.raises(ReadJaxError, match=pattern) as err:
        read_cards(path)
    assert "\n" not in str(err.value) and str(err.value).startswith(str(path))


def test_missing_file_and_unknown_task(tmp_path, data):
    with pytest.raises(ReadJaxError, match="cards file not found"):
        read_cards(tmp_path / "nope.yaml")
    path = write_cards(data, {"qa": artifact_card()})
    with pytest.raises(ReadJaxError, match=r"tasks\.other: no such task \(known: qa\)"):
        load_task(path, "other")


def test_profiling_split_is_ten_percent_of_non_test_data(data):
    path = write_cards(data, {"qa": artifact_card()})
    task = load_task(path, "qa")
    assert len(task.test) == 30 and len(task.dev) == 20  # 10 % of the 200 training rows
    assert {e.id for e in task.dev} <= {f"train{i}" for i in range(200)}
    assert not {e.id for e in task.dev} & {e.id for e in task.test}
    again = load_task(path, "qa")
    assert [e.id for e in again.dev] == [e.id for e in task.dev]
    assert [e.id for e in again.test] == [e.id for e in task.test]
    reseeded = artifact_card(dev={**artifact_card()["dev"], "seed": 5})
    other = load_task(write_cards(data, {"qa": reseeded}, "o.yaml"), "qa")
    assert [e.id for e in other.dev] != [e.id for e in task.dev]
    assert task.card.dev_seed == 3 and task.card.test_seed == 4 and task.card.eval_type == "exact_match"
    assert task.card.stated_requirement == (("math", 0.75), ("reasoning", 0.25))
    assert task.metric is get_metric("exact_match") and task.dev[0].task == "qa"


def test_same_data_removes_test_items_from_the_profiling_pool(data):
    write_jsonl(data / "all.jsonl", qa_rows("item", 100))
    src = {"source": "local", "path": "all.jsonl", "format": "generic_jsonl"}
    path = write_cards(data, {"qa": artifact_card(dev={**src, "seed": 0}, test={**src, "limit": 60, "seed": 0})})
    task = load_task(path, "qa")
    assert task.card.dev_seed != task.card.test_seed  # the test draw moves off the repeated seed
    assert len(task.test) == 60 and len(task.dev) == 4  # 10 % of the 40 non-test items
    assert not {e.id for e in task.dev} & {e.id for e in task.test}
    full = write_cards(data, {"qa": artifact_card(dev=src, test=src)}, "full.yaml")
    with pytest.raises(ReadJaxError, match=r"tasks\.qa\.dev: no items left once the 100 test items are removed"):
        load_task(full, "qa")


def test_items_repeating_a_test_prompt_never_enter_the_profiling_split(data):
    rows = qa_rows("train", 20)
    for r in rows[:10]:
        r["input"] = "test question 0"  # a test prompt under another id, in another file
    write_jsonl(data / "train.jsonl", rows)
    path = write_cards(data, {"qa": artifact_card(test={"source": "local", "path": "test.jsonl",
                                                         "format": "generic_jsonl"}, profiling_fraction=1.0)})
    task = load_task(path, "qa")
    assert len(task.dev) == 10 and all(e.prompt != "test question 0" for e in task.dev)


def test_fraction_limit_and_template(data):
    path = write_cards(data, {"qa": artifact_card(**EXTRA)})
    task = load_task(path, "qa", limit=7)
    assert len(task.test) == 7 and len(task.dev) == 40  # card's profiling_fraction 0.2
    assert load_task(path, "qa", profiling_fraction=0.05).card.dev_size == 10  # the argument wins
    assert task.test[0].prompt == "Answer briefly.\n\n" + "test question " + task.test[0].id[4:]
    assert [e.id for e in task.test] == [e.id for e in load_task(path, "qa").test][:7]


def test_choice_metric_needs_choices(data):
    path = write_cards(data, {"qa": artifact_card(eval_type="mc_loglik")})
    with pytest.raises(ReadJaxError, match=r"tasks\.qa\.eval_type: mc_loglik scores choices, but item"):
        load_task(path, "qa")


def test_shipped_cards_parse():
    for path in sorted(CARDS_DIR.glob("*.yaml")):
        cards = read_cards(path)
        assert cards.tasks, path
    artifact = read_cards(CARDS_DIR / "artifact_task_cards.yaml")
    assert {"humaneval", "gsm8k"} <= set(artifact.tasks)
    assert artifact.tasks["gsm8k"].dev.source == "hf"


def test_shipped_humaneval_card_splits_the_package_problems():
    task = load_task(CARDS_DIR / "humaneval.yaml", "humaneval")
    assert len(task.test) == 148 and len(task.dev) == 16
    assert {e.id for e in task.dev} | {e.id for e in task.test} == {f"HumanEval/{i}" for i in range(164)}
    assert task.metric.name == "pass_at_1"
