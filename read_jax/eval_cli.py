"""`read-jax eval`: score a model or a predictions file on one benchmark task of a cards file.

    read-jax eval CARDS.yaml --task NAME (--model SPEC | --predictions FILE.jsonl)
                  [--split test|dev] [--limit N] [--data-dir DIR] [--max-new-tokens N] [--json]

``--model`` is a model spec (`read_jax.models.resolve`: an HF directory, a hub id in the local
cache, a ``.gguf`` file, an alias, ``#keep=N``);
``--predictions`` a JSONL file of ``{"id": ..., "completion": ...}`` rows.  ``--json`` prints one
JSON object (task, metric, split, n, score, results); otherwise a one-line summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from read_jax.errors import ReadJaxError


class _Parser(argparse.ArgumentParser):
    """Usage errors as `ReadJaxError`, so the CLI prints one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        raise ReadJaxError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="read-jax eval", description=__doc__.splitlines()[0])
    p.add_argument("cards", help="task cards YAML (read_jax's shape or the official artifact's)")
    p.add_argument("--task", required=True, help="task name in the cards file")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="model spec: HF directory, cached hub id, .gguf, alias[#keep=N]")
    what.add_argument("--predictions", help='JSONL of {"id": ..., "completion": ...} rows')
    p.add_argument("--tokenizer", help="tokenizer directory (default: the model's)")
    p.add_argument("--split", choices=("test", "dev"), default="test", help="dev = the profiling split")
    p.add_argument("--limit", type=int, help="score the first N items of the split")
    p.add_argument("--data-dir", help="tensorflow-datasets data_dir (default: card, $TFDS_DATA_DIR)")
    p.add_argument("--max-new-tokens", type=int, help="generation length (default: the card's, else 256)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--dtype", default="bfloat16", help="parameter dtype for --model")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def read_predictions(path: str | Path) -> dict[str, str]:
    """id -> completion from a JSONL file; a malformed row is a one-line ``FILE:LINE`` error."""
    from read_jax.evals.loaders import read_jsonl

    out: dict[str, str] = {}
    for rec in read_jsonl(path):
        if "id" not in rec.data or not isinstance(rec.data.get("completion"), str):
            raise ReadJaxError(f'{rec.where}: expected {{"id": ..., "completion": "..."}}')
        key = str(rec.data["id"])
        if key in out:
            raise ReadJaxError(f"{rec.where}: id {key!r} given twice")
        out[key] = rec.data["completion"]
    return out


def _score_model(args, task, max_new_tokens: int):
    from read_jax.evals.evaluate import evaluate_model
    from read_jax.models.hf import encode_prompt, load_hf, load_tokenizer
    from read_jax.models.resolve import resolve_model

    model_dir = resolve_model(args.model)
    tokenizer = load_tokenizer(args.tokenizer or model_dir)
    model, _ = load_hf(model_dir, dtype=args.dtype)
    return evaluate_model(model, tokenizer, lambda p: encode_prompt(tokenizer, p), task, args.split,
                          limit=args.limit, max_new_tokens=max_new_tokens, batch_size=args.batch_size)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    for flag in ("limit", "max_new_tokens", "batch_size"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ReadJaxError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    from read_jax.evals.cards import read_cards, build_task
    from read_jax.evals.evaluate import DEFAULT_MAX_NEW_TOKENS, evaluate_predictions

    cards = read_cards(args.cards)
    card = cards.card(args.task)
    task = build_task(cards, args.task, data_dir=args.data_dir)
    if args.predictions:
        result = evaluate_predictions(task, args.split, read_predictions(args.predictions), args.limit,
                                      source=args.predictions)
    else:
        result = _score_model(args, task, args.max_new_tokens or card.max_new_tokens or DEFAULT_MAX_NEW_TOKENS)
    if args.json:
        print(result.to_json())
    else:
        print(f"{result.task} ({result.split}, {result.n} items): {result.metric} = {result.score:.4f}")
    sys.stdout.flush()
    return 0
