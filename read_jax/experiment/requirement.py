"""The requirement stage of an experiment: r_τ estimated once per task as configured (the target's pilot
interventions, the paper's g_φ on auxiliary tasks, the card, the world's truth or uniform), and the short
fixed-allocation distillations from S0 that it and the search baselines measure ΔU with."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import read_jax
from read_jax import faults
from read_jax.capabilities.probes import ProbeSuite, task_loglik
from read_jax.capabilities.registry import CapabilityRegistry
from read_jax.capabilities.requirement import (
    InterventionRecord, center_per_task, fit_requirement, requirement_metrics, sample_intervention_allocations,
    train_identifier,
)
from read_jax.config import to_dict
from read_jax.errors import ReadJaxError
from read_jax.loop import ReadRun, build_probe_suite
from read_jax.run_files import make_dir, read_json, write_json

if TYPE_CHECKING:
    from read_jax.experiment.core import Experiment

# the auxiliary tasks' interventions are drawn with this seed whatever the experiment's: g_φ is trained once
# per world (and cached), not once per seed
IDENTIFIER_SEED = 7919


class RequirementStage:
    """r_τ of one experiment (cached in DIR/requirement.json, not charged to the budget unless
    ``charge_requirement``); reads the experiment's config, components, probes and S0 profiles."""

    def __init__(self, experiment: Experiment):
        self.exp = experiment

    def requirement(self) -> dict[str, Any]:
        """r_τ (cached in requirement.json), estimated as configured, next to the world's truth."""
        exp = self.exp
        path = exp.out / "requirement.json"
        if path.exists():
            return read_json(path, "requirement")
        tick = time.perf_counter()
        cfg, n = exp.config, len(exp.caps)
        true_r = exp.c.task.true_r
        records: list[dict[str, Any]] = []
        pilot_tokens, identifier = 0, None
        if cfg.requirement == "true":
            if true_r is None:
                raise ReadJaxError(f"requirement: task {cfg.loop.task!r} has no known true requirement (only "
                                   "the synthetic world's tasks do); use interventions, card or uniform")
            r = np.asarray(true_r)
        elif cfg.requirement == "uniform":
            r = np.full(n, 1.0 / n)
        elif cfg.requirement == "card":
            r = exp.c.task.card.requirement(CapabilityRegistry(exp.caps))
            if r is None:
                raise ReadJaxError(f"task {cfg.loop.task!r}: its card states no requirement; use "
                                   "requirement=interventions")
        elif cfg.requirement == "identifier":
            r, identifier = self._identifier()
        else:
            r, records, pilot_tokens = self._target_interventions()
        result = {"mode": cfg.requirement, "estimated": [float(v) for v in r],
                  "true": None if true_r is None else [float(v) for v in true_r],
                  "metrics": None if true_r is None else requirement_metrics(r, true_r),
                  "interventions": records, "tokens": pilot_tokens,
                  "charged": bool(cfg.charge_requirement and pilot_tokens), "identifier": identifier,
                  "seconds": time.perf_counter() - tick}
        write_json(path, result)
        return result

    def _intervention_utility(self, model, task) -> float:
        exp = self.exp
        if exp.config.intervention_utility == "exact_match":
            return exp.utility(model, "dev", task)
        return task_loglik(model, task, exp.c.tokenizer, exp.c.encode_prompt, "dev")

    def _run_interventions(self, task, n: int, seed: int, directory: Path, probes: ProbeSuite,
                           label: str) -> tuple[list[InterventionRecord], int]:
        """``n`` short fixed-allocation distillations from S0 on ``task`` (random sparse allocations): the
        (w, Δs, ΔU) records requirement identification fits (method.md §2), and the tokens they spent."""
        allocations = sample_intervention_allocations(n, len(self.exp.caps), seed=seed)
        return self.short_runs(task, allocations, seed, directory, probes, label, self.exp.config.intervention_tokens)

    def short_runs(self, task, allocations, seed: int, directory: Path, probes: ProbeSuite, label: str,
                   tokens_each: int) -> tuple[list[InterventionRecord], int]:
        """One short fixed-allocation distillation from S0 per allocation (resumable), scored on ``task``'s
        profiling split: (w, Δs, ΔU) records and the tokens they spent."""
        exp = self.exp
        cfg = exp.config
        components = dataclasses.replace(exp.c, task=task)
        base_u = self._intervention_utility(exp.c.student, task)
        loop = dataclasses.replace(cfg.loop, task=task.name, budget_tokens=tokens_each, intervals=1,
                                   dev_every=1.0, policy="best_fixed")
        records, tokens = [], 0
        for i, w in enumerate(allocations):
            # resumes one finished (or part-way) before an interruption
            run = ReadRun.open(dataclasses.replace(loop, seed=seed + 1 + i), components, directory / f"{i:02d}",
                               np.full(len(exp.caps), 1 / len(exp.caps)), probes=probes, progress=False,
                               policy_kwargs={"allocation": tuple(w)}, dev_eval=False,
                               initial_profile=exp.initial_profile(probes))
            run.run()
            du = self._intervention_utility(run.student, task) - base_u
            ds = (run.profile - run.initial_profile).tolist()
            records.append(InterventionRecord(task.name, tuple(w), tuple(ds), du))
            tokens += run.budget.used
            faults.point("intervention")
            if exp.progress:
                print(f"  {label} {i + 1}/{len(allocations)}: ΔU = {du:+.3f}", file=sys.stderr)
        return records, tokens

    def _target_interventions(self) -> tuple[np.ndarray, list[dict[str, Any]], int]:
        """Pilot distillations on the target's own dev split, fitted on the simplex (not the paper's
        default: see docs/deviations.md); their tokens are reported, and charged with charge_requirement."""
        exp = self.exp
        cfg = exp.config
        records, tokens = self._run_interventions(exp.c.task, cfg.interventions, cfg.loop.seed,
                                                  exp.out / "interventions", exp.probes, "pilot intervention")
        r = fit_requirement(records, intercept=cfg.intervention_intercept)
        return r, [dataclasses.asdict(x) for x in records], tokens

    # -- the paper's g_φ ------------------------------------------------------------------------
    def _identifier(self) -> tuple[np.ndarray, dict[str, Any]]:
        """r_τ = g_φ(card of τ), g_φ trained on interventions of auxiliary tasks only (never the target),
        with its leave-one-task-out error over those tasks (method.md §2)."""
        c, cfg = self.exp.c, self.exp.config
        names = [t for t in (cfg.identifier_tasks or c.task_names) if t != cfg.loop.task]
        if c.load_task is None or len(names) < 2:
            raise ReadJaxError(f"requirement=identifier: g_φ needs at least 2 auxiliary tasks besides "
                               f"{cfg.loop.task!r} (got {names}); set identifier_tasks, or for source=real add "
                               "tasks to real.pack_tasks")
        unknown = [t for t in names if t not in c.task_names]
        if unknown:
            raise ReadJaxError(f"identifier_tasks: unknown task {unknown[0]!r}; choose from "
                               f"{', '.join(c.task_names)}")
        tasks = {name: c.load_task(name) for name in names}
        records, tokens = self._auxiliary_records(tasks)
        g = _train_identifier(tasks, records, cfg.intervention_intercept, names)
        loto = {}
        for held in names:
            if tasks[held].true_r is None:
                continue
            rest = [t for t in names if t != held]
            r_held = _train_identifier(tasks, records, cfg.intervention_intercept, rest).predict(tasks[held].card)
            loto[held] = requirement_metrics(r_held, tasks[held].true_r)
        summary = {"tasks": names, "interventions_per_task": cfg.identifier_interventions,
                   "tokens": tokens, "charged": False,
                   "leave_one_task_out": loto,
                   "leave_one_task_out_mean": {k: float(np.mean([m[k] for m in loto.values()]))
                                               for k in ("l1", "topk_overlap", "cosine")} if loto else None}
        return g.predict(c.task.card), summary

    def _identifier_key(self) -> str:
        """What the auxiliary records depend on (not the seed, the target, the policies or the budget)."""
        cfg = to_dict(self.exp.config)
        loop = {k: v for k, v in cfg["loop"].items()
                if k not in ("task", "seed", "policy", "budget_tokens", "intervals", "dev_every", "bandit")}
        keep = {k: cfg[k] for k in ("source", "world_seed", "world_preset", "teacher", "student", "real",
                                    "intervention_tokens", "intervention_utility", "identifier_interventions")}
        blob = json.dumps({"loop": loop, **keep, "read_jax": read_jax.__version__}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _auxiliary_records(self, tasks: dict[str, Any]) -> tuple[list[InterventionRecord], int]:
        """Every auxiliary task's intervention records, from the cache when it holds them for this key."""
        cfg, key = self.exp.config, self._identifier_key()
        cache = Path(cfg.identifier_cache) if cfg.identifier_cache else self.exp.out / "identifier"
        records, tokens, probes = [], 0, None
        for name, task in tasks.items():
            path = cache / key / f"{name}.json"
            if path.exists():
                saved = read_json(path, "identifier records")
            else:
                if probes is None:  # the identifier's own probe set: the same for every seed of the world
                    probes = build_probe_suite(self.exp.c, cfg.loop, IDENTIFIER_SEED)
                seed = IDENTIFIER_SEED + 1000 * (zlib.crc32(name.encode()) % 1000)
                recs, used = self._run_interventions(task, cfg.identifier_interventions, seed,
                                                     cache / key / "runs" / name, probes,
                                                     f"g_φ: {name} intervention")
                saved = {"task": name, "records": [dataclasses.asdict(r) for r in recs], "tokens": used}
                make_dir(path.parent)
                write_json(path, saved)
            records += [InterventionRecord(**r) for r in saved["records"]]
            tokens += int(saved["tokens"])
        return records, tokens


def _train_identifier(tasks: dict[str, Any], records: list[InterventionRecord], intercept: bool,
                      names: list[str]):
    """g_φ on the records of ``names``; with ``intercept`` each task's records are centred first (its own
    free intercept, as `fit_requirement` fits one per task)."""
    own = [r for r in records if r.task in names]
    return train_identifier({n: tasks[n].card for n in names}, center_per_task(own) if intercept else own)
