"""How the shipped teacher and student do on the world's chained tasks, step by step, and whether a
task responds to distilling the capabilities it needs (on exact, gold answers: the best data a policy
could buy).

    python experiments/chained_tasks.py                       # teacher and student, every chained task
    python experiments/chained_tasks.py --gold reasoning general_knowledge --steps 300

For each chained task (test split): the utility (every step answered by the model, fed forward), and
each step's accuracy on the exact chain's own prompts.  With ``--gold``, the student is trained
``--steps`` more steps (32 rows, AdamW at ``--lr``, warm-up 10) on exact examples of the named
capabilities (equal shares; ``all`` = every capability) and scored again, beside its capability
accuracies before and after (64 fresh examples each).  Writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from read_jax.distill.losses import LossConfig
from read_jax.distill.train_step import Distiller, OptimizerConfig
from read_jax.evals.evaluate import evaluate_model
from read_jax.worlds import World, WorldConfig
from read_jax.worlds.recipe import (RECIPES_BY_NAME, WORLD_PRESET, capability_accuracy, examples_to_batch,
                                   exact_match, load_or_train)
from read_jax.worlds.tokenizer import encode_world_prompt

ROWS, LENGTH = 32, 64


def chained_scores(model, world: World, split: str) -> dict[str, dict[str, float]]:
    """Per chained task: utility and each step's accuracy on the exact chain's prompts."""
    tok = world.tokenizer()
    out = {}
    for name in world.chained_task_names:
        task = world.task(name)
        examples = task.split(split)
        row = {"utility": evaluate_model(model, tok, lambda p: encode_world_prompt(tok, p), task, split,
                                         max_new_tokens=24, batch_size=128, progress=False).score}
        for k in range(task.chain.n_steps(examples[0])):
            steps = [dataclasses.replace(e, prompt=p, answer=a)
                     for e in examples for p, a in [task.chain.reference_steps(e)[k]]]
            row[f"step{k + 1}"] = float(np.mean(exact_match(model, world, steps)))
        out[name] = row
    return out


def gold_distil(model, world: World, capabilities: list[str], steps: int, lr: float, seed: int = 123):
    """``model`` trained ``steps`` more steps on exact examples of ``capabilities`` (equal shares), none of
    them an evaluation prompt of any task or chained step."""
    weights = {c: float(c in capabilities) for c in world.capabilities}
    stream = world.iter_mixture(seed, task_share=0.0, capability_weights=weights, exclude=world.leakage_filter())
    distiller = Distiller(model, loss_config=LossConfig(ce=1.0, chunk_size=None),
                          optimizer_config=OptimizerConfig(learning_rate=lr, weight_decay=0.0, warmup_steps=10,
                                                           max_grad_norm=1.0))
    tok = world.tokenizer()
    for _ in range(steps):
        distiller.step(examples_to_batch(tok, [next(stream) for _ in range(ROWS)], LENGTH))
    return distiller.student


def _table(title: str, scores: dict[str, dict[str, float]]) -> str:
    lines = [title, f"{'task':15s} {'utility':>8s} {'step1':>7s} {'step2':>7s}"]
    lines += [f"{n:15s} {s['utility']:8.3f} {s['step1']:7.3f} {s['step2']:7.3f}" for n, s in scores.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "test"), default="test")
    ap.add_argument("--gold", nargs="*", default=None, metavar="CAPABILITY",
                    help="train the student on exact examples of these capabilities ('all': every one)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--out", default="runs/chained_tasks.json")
    args = ap.parse_args(argv)
    world = World(0, WorldConfig.preset(WORLD_PRESET))
    caps = list(world.capabilities) if args.gold == ["all"] else list(args.gold or [])
    unknown = [c for c in caps if c not in world.capabilities]
    if unknown:
        print(f"chained_tasks: --gold: unknown capability {unknown[0]!r}; known: {', '.join(world.capabilities)}",
              file=sys.stderr)
        return 2
    report: dict = {"split": args.split, "command": "python experiments/chained_tasks.py " + " ".join(argv or sys.argv[1:])}
    for name in ("teacher_cot", "student"):
        model = load_or_train(RECIPES_BY_NAME[name], world, progress=False)
        report[name] = chained_scores(model, world, args.split)
        print(_table(f"{name} ({args.split})", report[name]), flush=True)
    if caps:
        student = load_or_train(RECIPES_BY_NAME["student"], world, progress=False)
        before = capability_accuracy(student, world)
        trained = gold_distil(student, world, caps, args.steps, args.lr)
        report["gold"] = {"capabilities": caps, "steps": args.steps, "lr": args.lr,
                          "capability_accuracy_before": before,
                          "capability_accuracy_after": capability_accuracy(trained, world),
                          "scores": chained_scores(trained, world, args.split)}
        print(_table(f"student after {args.steps} gold steps on {', '.join(caps)}", report["gold"]["scores"]))
        print("capability accuracy before -> after: " + ", ".join(
            f"{c} {before[c]:.2f}->{report['gold']['capability_accuracy_after'][c]:.2f}" for c in world.capabilities))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
