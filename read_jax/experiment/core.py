"""The `Experiment`: one directory, its requirement stage, the policy runs at equal budget and the report
that compares them; every stage already on disk is reused, so a resume finishes where it stopped."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import read_jax
from read_jax import faults
from read_jax.bandit import build_candidate_actions
from read_jax.capabilities.probes import ProbeSuite, task_utility
from read_jax.config import from_dict, override, to_dict
from read_jax.distributed import is_primary
from read_jax.errors import ReadJaxError
from read_jax.experiment.config import SEARCH_POLICIES, ExperimentConfig, one_hot_variant, with_one_hot_variant
from read_jax.experiment.files import VERSION_FILE, _check_same_config, _check_version, _differences, _undo_writes
from read_jax.experiment.report import _phase_totals, overhead_share
from read_jax.experiment.requirement import RequirementStage
from read_jax.loop import ReadRun, build_probe_suite
from read_jax.run_files import as_path, check_creatable, make_dir, read_json, write_json
from read_jax.run_lock import RunLock
from read_jax.sources import Components, build_components


class Experiment:
    """Drives requirement identification and the policy runs of one experiment directory."""

    def __init__(self, config: ExperimentConfig, out_dir: str | Path, components: Components | None = None,
                 progress: bool = True, changed_config: bool = False):
        self.config, self.out = config, as_path(out_dir)
        saved = self.out / "experiment.json"
        check_creatable(self.out)  # --out (or a parent) must not be a file: checked before any work
        self.lock = RunLock(self.out)
        if saved.exists():
            self.lock.check()
            _check_version(self.out)
            if not changed_config:
                _check_same_config(saved, config)
        self.progress = progress and is_primary()  # one progress display for a multi-process run
        self.timing: dict[str, float] = {}
        self._profiles: list[tuple[ProbeSuite, np.ndarray]] = []  # S0's profile per probe suite
        self.requirement_stage = RequirementStage(self)
        # components first: a bad model, tokenizer, pack or task fails before anything is written
        with self._stage("load_models", "loading models, tokenizer and tasks"):
            self.c = components or build_components(config)
        created = not self.out.exists()
        make_dir(self.out)
        undo: dict[Path, bytes | None] = {}  # file -> its bytes before this start (None: it is new)
        try:
            self.lock.acquire()
            if changed_config or not saved.exists():
                for path, data in ((self.out / VERSION_FILE, {"read_jax": read_jax.__version__}),  # first: resume
                                   (saved, to_dict(config))):                                     # reads it
                    undo[path] = path.read_bytes() if path.exists() else None
                    write_json(path, data)
            self._setup_probes()
        except BaseException:
            self.lock.release()
            _undo_writes(undo, self.out if created else None)
            raise

    def _setup_probes(self) -> None:
        lc = self.config.loop
        self.caps = tuple(self.c.source.capabilities)
        with self._stage("probes_setup", f"the teacher answers {lc.probes_per_capability} probes per capability"):
            self.probes = build_probe_suite(self.c, lc, lc.seed)

    @contextlib.contextmanager
    def _stage(self, name: str, message: str):
        """Time a setup or evaluation stage into ``timing[name]``; say what runs (long work shows progress)."""
        if self.progress:
            print(f"[{name}] {message} ...", file=sys.stderr, flush=True)
        tick = time.perf_counter()
        yield
        self.timing[name] = self.timing.get(name, 0.0) + time.perf_counter() - tick
        if self.progress:
            print(f"[{name}] done in {time.perf_counter() - tick:.1f} s", file=sys.stderr, flush=True)

    @classmethod
    def resume(cls, out_dir: str | Path, overrides: list[str] = (), progress: bool = True) -> "Experiment":
        """Continue the experiment in ``out_dir``; ``overrides`` change its saved config explicitly (e.g. a
        smaller learning rate after a numerical fault), each change printed and saved with the config."""
        path = as_path(out_dir) / "experiment.json"
        if not path.is_file():
            raise ReadJaxError(f"{out_dir}: not an experiment directory (experiment.json not found)")
        saved = from_dict(ExperimentConfig, read_json(path, "experiment config"))
        config = override(saved, list(overrides))
        changes = _differences(to_dict(saved), to_dict(config))
        for field, (old, new) in changes.items():
            print(f"read-jax: resuming with {field} changed from {old!r} to {new!r}", file=sys.stderr)
        return cls(config, out_dir, progress=progress, changed_config=bool(changes))

    def close(self) -> None:
        """Give up the directory (the run lock); `run` does it when it ends, however it ends."""
        self.lock.release()

    # -- requirement ---------------------------------------------------------------------------
    def utility(self, model, split: str, task=None) -> float:
        """U_τ of ``model`` on a split of the target task (or of ``task``)."""
        return task_utility(model, task or self.c.task, self.c.tokenizer, self.c.encode_prompt, split,
                            max_new_tokens=self.config.loop.generation.eval_tokens, mesh=self.c.mesh)

    def extra_utilities(self, model) -> dict[str, float]:
        """Test-split scores on the configured extra benchmarks (real source: ``real.extra_evals``)."""
        return {t.name: self.utility(model, "test", t) for t in self.c.extra_tasks}

    def requirement(self) -> dict[str, Any]:
        """r_τ (cached in requirement.json), estimated as configured, next to the world's truth."""
        return self.requirement_stage.requirement()

    def initial_profile(self, probes: ProbeSuite) -> np.ndarray:
        """The initial student's profile on ``probes``, computed once: every run starts from it."""
        for seen, profile in self._profiles:
            if seen is probes:
                return profile
        profile = probes.loglik(self.c.student)
        self._profiles.append((probes, profile))
        return profile

    def teacher_summary(self, samples_per_capability: int = 2) -> dict[str, Any]:
        """The teacher's profile, its scores (a reference for the students') and a few of its real
        probe answers per capability, so a report shows what the supervision looks like."""
        samples = []
        for ci, cap in enumerate(self.caps):
            picked = [i for i, owner in enumerate(self.probes.owner) if owner == ci][:samples_per_capability]
            samples.extend({"capability": cap, "prompt": self.probes.prompts[i],
                            "teacher_answer": self.probes.teacher_answers[i]} for i in picked)
        teacher = self.c.teacher
        return {"profile": self.probes.as_dict(self.probes.loglik(teacher)),
                "utility": self.utility(teacher, self.config.eval_split),
                "extra_utility": self.extra_utilities(teacher),
                "probe_samples": samples}

    # -- policies ------------------------------------------------------------------------------
    def search(self, name: str, r: np.ndarray) -> dict[str, Any]:
        """The search baselines: every candidate allocation (``grid``: the action set A(τ) the bandit chooses
        from; ``one_hot_best``: every one-hot) distilled for ``search_tokens`` from S0 and scored on the
        profiling split (the `intervention_utility` measure); the best one is then run at the full budget.
        Cached in DIR/search/NAME.json; its tokens are reported next to the policy (not charged)."""
        path = self.out / "search" / f"{name}.json"
        if path.exists():
            return read_json(path, "search result")
        cfg, n = self.config, len(self.caps)
        if name == "one_hot_best":
            candidates = np.eye(n).tolist()
        else:
            b = cfg.loop.bandit
            candidates = build_candidate_actions(list(self.caps), list(r), 2, list(b.weight_grid), b.top_k,
                                                 cfg.search_max_candidates, b.include_one_hot)
        records, tokens = self.requirement_stage.short_runs(
            self.c.task, candidates, cfg.loop.seed + 500, self.out / "search" / name, self.probes, f"{name} search",
            cfg.search_tokens or cfg.intervention_tokens)
        scores = [rec.delta_u for rec in records]
        best = int(np.argmax(scores))
        result = {"allocation": [float(v) for v in candidates[best]], "candidates": candidates,
                  "profiling_delta_u": scores, "tokens": tokens, "measure": cfg.intervention_utility}
        write_json(path, result)
        return result

    def run_policy(self, policy: str, r: np.ndarray, budget_tokens: int | None = None,
                   allocation: Sequence[float] | None = None, name: str | None = None) -> dict[str, Any]:
        run_dir = self.out / "runs" / (name or policy)
        loop = dataclasses.replace(self.config.loop, policy=policy,
                                   budget_tokens=budget_tokens or self.config.loop.budget_tokens)
        if (variant := one_hot_variant(policy)) is not None:
            loop = with_one_hot_variant(loop, variant)
        kwargs = {"allocation": tuple(allocation)} if allocation is not None else None
        run = ReadRun.open(loop, self.c, run_dir, r, probes=self.probes, progress=self.progress, policy_kwargs=kwargs,
                           initial_profile=self.initial_profile(self.probes))  # resumes a run part-way done
        tick = time.perf_counter()
        run.run()
        summary = run.summary()
        summary["run_dir"] = run_dir.name
        summary["utility"] = self.utility(run.student, self.config.eval_split)
        summary["extra_utility"] = self.extra_utilities(run.student)
        summary["dev_utility_final"] = summary["dev_utility"][-1] if summary["dev_utility"] else None
        summary["wall_seconds"] = time.perf_counter() - tick
        summary["phase_seconds"] = phases = _phase_totals(run.history)
        summary["overhead_share"] = overhead_share(phases)
        return summary

    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            self.close()

    def _run(self) -> dict[str, Any]:
        with self._stage("requirement", f"requirement r ({self.config.requirement})"):
            req = self.requirement()
        r = np.asarray(req["estimated"])
        with self._stage("initial_eval", "scoring the initial student"):
            initial = {"utility": self.utility(self.c.student, self.config.eval_split),
                       "dev_utility": self.utility(self.c.student, "dev"),
                       "extra_utility": self.extra_utilities(self.c.student),
                       "profile": self.probes.as_dict(self.initial_profile(self.probes))}
        budget = self.config.loop.budget_tokens - (req.get("tokens", 0) if req.get("charged") else 0)
        if budget < 1:
            raise ReadJaxError(f"charge_requirement: the pilot interventions spent {req['tokens']} tokens, the whole "
                               f"loop.budget_tokens={self.config.loop.budget_tokens}; lower interventions or "
                               "intervention_tokens, or raise the budget")
        policies = {}
        for name in self.config.policies:
            if name in SEARCH_POLICIES:
                with self._stage(f"search_{name}", f"{name}: searching {SEARCH_POLICIES[name]}"):
                    found = self.search(name, r)
                policies[name] = self.run_policy("best_fixed", r, budget, found["allocation"], name=name)
                policies[name]["search"] = {k: found[k] for k in ("allocation", "tokens", "measure")}
            else:
                policies[name.replace("read_ucb", "read")] = self.run_policy(name, r, budget)
            faults.point("policy_done")
        with self._stage("teacher_eval", "scoring the teacher (reference)"):
            teacher = self.teacher_summary()
        report = {
            "task": self.config.loop.task,
            "metric": self.c.task.card.eval_type,
            "capabilities": list(self.caps),
            "budget": {"total_tokens": self.config.loop.budget_tokens, "accounting": self.config.loop.accounting,
                       "requirement_tokens": req.get("tokens", 0), "requirement_charged": bool(req.get("charged")),
                       "policy_tokens": budget},
            "requirement": req,
            "initial": initial,
            "teacher": teacher,
            "components": self.c.description,
            "policies": policies,
            "eval_split": self.config.eval_split,
            "timing": self.timing,
            "config": to_dict(self.config),
        }
        write_json(self.out / "report.json", report)
        from read_jax.plots import plot_report

        report["plots"] = [str(p) for p in plot_report(report, self.out)]
        write_json(self.out / "report.json", report)
        return report
