"""One experiment: a task, a budget, several policies at equal budget, one report.

Used by `read-jax demo` (a preset) and `read-jax run CONFIG` (any config).  An experiment
directory holds ``experiment.json`` (the config), ``requirement.json`` (r estimated once per
task, not charged to the budget), one run directory per policy (``history.jsonl`` and orbax
checkpoints), ``report.json`` and the plots.  Every stage that is already on disk is reused,
so ``read-jax run --resume DIR`` finishes an interrupted experiment where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from read_jax.capabilities.probes import ProbeSuite, task_loglik, task_utility
from read_jax.capabilities.requirement import (
    InterventionRecord, center_per_task, fit_requirement, requirement_metrics, sample_intervention_allocations,
    train_identifier,
)
import read_jax
from read_jax import faults
from read_jax.config import from_dict, override, to_dict
from read_jax.errors import ReadJaxError
from read_jax.bandit import build_candidate_actions
from read_jax.capabilities.registry import CapabilityRegistry
from read_jax.loop import LoopConfig, ReadRun, build_probe_suite
from read_jax.distributed import is_primary
from read_jax.run_files import as_path, check_creatable, make_dir, read_json, write_json
from read_jax.run_lock import RunLock
from read_jax.sources import SOURCES, Components, build_components
from read_jax.sources.config import RealSourceConfig

REQUIREMENT_MODES = ("identifier", "interventions", "card", "true", "uniform")
# the auxiliary tasks' interventions are drawn with this seed whatever the experiment's: g_φ is trained once
# per world (and cached), not once per seed
IDENTIFIER_SEED = 7919
# baselines an experiment resolves by a search on the profiling split, then runs as a fixed allocation
SEARCH_POLICIES = {"grid": "the action set A(τ) for the best fixed allocation",
                   "one_hot_best": "every one-hot allocation for the best capability"}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    loop: LoopConfig = LoopConfig()
    policies: tuple[str, ...] = ("read_ucb", "uniform", "one_hot")
    source: str = "world"             # where data comes from: "world" (embedded) or "real" (see read_jax.sources)
    world_seed: int = 0               # source=world: the world's seed and `WorldConfig.preset` name; recipe
    world_preset: str = "tiny"        # models must be trained on the same world
    # models: source=world: "recipe:NAME" or an HF directory; source=real: a model spec (`read_jax.models.resolve`)
    teacher: str = "recipe:teacher"
    student: str = "recipe:student"
    real: RealSourceConfig = RealSourceConfig()
    # device mesh [data, fsdp, tp] over all devices of all processes the models are loaded onto and run
    # on (one entry may be -1: the devices left); empty: one device, or with several processes all of
    # them data-parallel.  Both sources; ``real.mesh`` is the older spelling for source=real.
    mesh: tuple[int, ...] = ()
    requirement: str = "interventions"
    interventions: int = 8
    intervention_tokens: int = 3000
    # ΔU of an intervention: "loglik" (mean log-likelihood of the dev answers: smooth) or "exact_match"
    intervention_utility: str = "loglik"
    # fit ΔU ≈ b + rᵀΔs with a free intercept b (the change every intervention shares, see fit_requirement)
    intervention_intercept: bool = True
    # requirement=interventions: subtract the pilot distillations' tokens from every policy's budget
    charge_requirement: bool = False
    # requirement=identifier (the paper's g_φ): auxiliary tasks it trains on (empty: every task of the source
    # but the target), interventions per auxiliary task, and where their records are cached (empty:
    # DIR/identifier; share one directory between experiments on the same world to train g_φ once)
    identifier_tasks: tuple[str, ...] = ()
    identifier_interventions: int = 6
    identifier_cache: str = ""
    # the search baselines (policies `grid`, `one_hot_best`): tokens per candidate (0: intervention_tokens)
    # and at most this many candidates of A(τ) for `grid`
    search_tokens: int = 0
    search_max_candidates: int = 16
    eval_split: str = "test"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ReadJaxError(f"source: unknown data source {self.source!r}; choose one of {', '.join(SOURCES)}")
        if self.requirement not in REQUIREMENT_MODES:
            raise ReadJaxError(f"requirement must be one of {', '.join(REQUIREMENT_MODES)}, got {self.requirement!r}")
        if not self.policies:
            raise ReadJaxError("policies must name at least one policy")
        # policy names (and best_fixed allocations) are checked here, when the config is parsed, not when
        # their run starts after the requirement stage; allocation lengths are checked by the source, which
        # knows the capabilities
        from read_jax.bandit.policies import parse_policy_spec

        for i, spec in enumerate(self.policies):
            if spec not in SEARCH_POLICIES:
                parse_policy_spec(spec, where="policies")
            if spec in self.policies[:i]:
                raise ReadJaxError(f"policies: {spec!r} is listed twice; list each policy once")
        parse_policy_spec(self.loop.policy, where="loop.policy")
        if self.search_tokens < 0 or self.search_max_candidates < 1:
            raise ReadJaxError(f"search_tokens must be >= 0 and search_max_candidates >= 1, got {self.search_tokens} "
                               f"and {self.search_max_candidates}")
        if self.identifier_interventions < 1:
            raise ReadJaxError(f"identifier_interventions must be >= 1, got {self.identifier_interventions}")
        if self.interventions < 1 or self.intervention_tokens < 1:
            raise ReadJaxError(f"interventions and intervention_tokens must be >= 1, got {self.interventions} and "
                               f"{self.intervention_tokens}")
        if self.source == "world":
            from read_jax.worlds.data import WorldConfig

            try:
                WorldConfig.preset(self.world_preset)
            except ReadJaxError as err:
                raise ReadJaxError(f"world_preset: {err}") from None
        if self.intervention_utility not in ("loglik", "exact_match"):
            raise ReadJaxError(f"intervention_utility must be 'loglik' or 'exact_match', got "
                               f"{self.intervention_utility!r}")
        if self.eval_split not in ("dev", "test"):
            raise ReadJaxError(f"eval_split must be 'dev' or 'test', got {self.eval_split!r}")
        if self.mesh and (len(self.mesh) != 3 or any(m == 0 or m < -1 for m in self.mesh)):
            raise ReadJaxError(f"mesh: expected [data, fsdp, tp] sizes >= 1 (one may be -1), got {list(self.mesh)}")


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
        path = self.out / "requirement.json"
        if path.exists():
            return read_json(path, "requirement")
        tick = time.perf_counter()
        cfg, n = self.config, len(self.caps)
        true_r = self.c.task.true_r
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
            r = self.c.task.card.requirement(CapabilityRegistry(self.caps))
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

    def _initial_profile(self, probes: ProbeSuite) -> np.ndarray:
        """The initial student's profile on ``probes``, computed once: every run starts from it."""
        for seen, profile in self._profiles:
            if seen is probes:
                return profile
        profile = probes.loglik(self.c.student)
        self._profiles.append((probes, profile))
        return profile

    def _intervention_utility(self, model, task) -> float:
        if self.config.intervention_utility == "exact_match":
            return self.utility(model, "dev", task)
        return task_loglik(model, task, self.c.tokenizer, self.c.encode_prompt, "dev")

    def _run_interventions(self, task, n: int, seed: int, directory: Path, probes: ProbeSuite,
                           label: str) -> tuple[list[InterventionRecord], int]:
        """``n`` short fixed-allocation distillations from S0 on ``task`` (random sparse allocations): the
        (w, Δs, ΔU) records requirement identification fits (method.md §2), and the tokens they spent."""
        allocations = sample_intervention_allocations(n, len(self.caps), seed=seed)
        return self._short_runs(task, allocations, seed, directory, probes, label, self.config.intervention_tokens)

    def _short_runs(self, task, allocations, seed: int, directory: Path, probes: ProbeSuite, label: str,
                    tokens_each: int) -> tuple[list[InterventionRecord], int]:
        """One short fixed-allocation distillation from S0 per allocation (resumable), scored on ``task``'s
        profiling split: (w, Δs, ΔU) records and the tokens they spent."""
        cfg = self.config
        components = dataclasses.replace(self.c, task=task)
        base_u = self._intervention_utility(self.c.student, task)
        loop = dataclasses.replace(cfg.loop, task=task.name, budget_tokens=tokens_each, intervals=1,
                                   dev_every=1.0, policy="best_fixed")
        records, tokens = [], 0
        for i, w in enumerate(allocations):
            run = ReadRun(dataclasses.replace(loop, seed=seed + 1 + i), components, directory / f"{i:02d}",
                          np.full(len(self.caps), 1 / len(self.caps)), probes=probes, progress=False,
                          policy_kwargs={"allocation": tuple(w)}, dev_eval=False,
                          initial_profile=self._initial_profile(probes))
            if run.has_checkpoint():  # finished (or part-way) before an interruption
                run.load()
            run.run()
            du = self._intervention_utility(run.student, task) - base_u
            ds = (run.profile - run.initial_profile).tolist()
            records.append(InterventionRecord(task.name, tuple(w), tuple(ds), du))
            tokens += run.budget.used
            faults.point("intervention")
            if self.progress:
                print(f"  {label} {i + 1}/{len(allocations)}: ΔU = {du:+.3f}", file=sys.stderr)
        return records, tokens

    def _target_interventions(self) -> tuple[np.ndarray, list[dict[str, Any]], int]:
        """Pilot distillations on the target's own dev split, fitted on the simplex (not the paper's
        default: see docs/deviations.md); their tokens are reported, and charged with charge_requirement."""
        cfg = self.config
        records, tokens = self._run_interventions(self.c.task, cfg.interventions, cfg.loop.seed,
                                                  self.out / "interventions", self.probes, "pilot intervention")
        r = fit_requirement(records, intercept=cfg.intervention_intercept)
        return r, [dataclasses.asdict(x) for x in records], tokens

    # -- the paper's g_φ ------------------------------------------------------------------------
    def _identifier(self) -> tuple[np.ndarray, dict[str, Any]]:
        """r_τ = g_φ(card of τ), g_φ trained on interventions of auxiliary tasks only (never the target),
        with its leave-one-task-out error over those tasks (method.md §2)."""
        cfg = self.config
        names = [t for t in (cfg.identifier_tasks or self.c.task_names) if t != cfg.loop.task]
        if self.c.load_task is None or len(names) < 2:
            raise ReadJaxError(f"requirement=identifier: g_φ needs at least 2 auxiliary tasks besides "
                               f"{cfg.loop.task!r} (got {names}); set identifier_tasks, or for source=real add "
                               "tasks to real.pack_tasks")
        unknown = [t for t in names if t not in self.c.task_names]
        if unknown:
            raise ReadJaxError(f"identifier_tasks: unknown task {unknown[0]!r}; choose from "
                               f"{', '.join(self.c.task_names)}")
        tasks = {name: self.c.load_task(name) for name in names}
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
        return g.predict(self.c.task.card), summary

    def _identifier_key(self) -> str:
        """What the auxiliary records depend on (not the seed, the target, the policies or the budget)."""
        cfg = to_dict(self.config)
        loop = {k: v for k, v in cfg["loop"].items()
                if k not in ("task", "seed", "policy", "budget_tokens", "intervals", "dev_every", "bandit")}
        keep = {k: cfg[k] for k in ("source", "world_seed", "world_preset", "teacher", "student", "real",
                                    "intervention_tokens", "intervention_utility", "identifier_interventions")}
        blob = json.dumps({"loop": loop, **keep, "read_jax": read_jax.__version__}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _auxiliary_records(self, tasks: dict[str, Any]) -> tuple[list[InterventionRecord], int]:
        """Every auxiliary task's intervention records, from the cache when it holds them for this key."""
        cfg, key = self.config, self._identifier_key()
        cache = Path(cfg.identifier_cache) if cfg.identifier_cache else self.out / "identifier"
        records, tokens, probes = [], 0, None
        for name, task in tasks.items():
            path = cache / key / f"{name}.json"
            if path.exists():
                saved = read_json(path, "identifier records")
            else:
                if probes is None:  # the identifier's own probe set: the same for every seed of the world
                    probes = build_probe_suite(self.c, cfg.loop, IDENTIFIER_SEED)
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
        records, tokens = self._short_runs(self.c.task, candidates, cfg.loop.seed + 500, self.out / "search" / name,
                                           self.probes, f"{name} search", cfg.search_tokens or cfg.intervention_tokens)
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
        kwargs = {"allocation": tuple(allocation)} if allocation is not None else None
        run = ReadRun(loop, self.c, run_dir, r, probes=self.probes, progress=self.progress, policy_kwargs=kwargs,
                      initial_profile=self._initial_profile(self.probes))
        if run.has_checkpoint():
            run.load()
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
                       "profile": self.probes.as_dict(self._initial_profile(self.probes))}
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


VERSION_FILE = "version.json"


def _train_identifier(tasks: dict[str, Any], records: list[InterventionRecord], intercept: bool,
                      names: list[str]):
    """g_φ on the records of ``names``; with ``intercept`` each task's records are centred first (its own
    free intercept, as `fit_requirement` fits one per task)."""
    own = [r for r in records if r.task in names]
    return train_identifier({n: tasks[n].card for n in names}, center_per_task(own) if intercept else own)


def _undo_writes(undo: dict[Path, bytes | None], created_dir: Path | None) -> None:
    """A start that failed (bad teacher output, a prompt over the context, a full disk) leaves the directory
    as it was: files it replaced get their bytes back, files it added go, a directory it created goes."""
    for path, old in undo.items():
        with contextlib.suppress(OSError):
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(old)
    if created_dir is not None:
        with contextlib.suppress(OSError):
            created_dir.rmdir()  # only when empty: never removes what it did not write


def _check_version(out: Path) -> None:
    """A directory written by another read_jax version may hold state this one reads differently."""
    path = out / VERSION_FILE
    written = read_json(path, "version record")["read_jax"] if path.exists() else "unknown (before 0.1.0)"
    if written != read_jax.__version__:
        raise ReadJaxError(f"{out}: written by read_jax {written}, this is {read_jax.__version__}; resume it with "
                           "that version or start a new --out")


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """{dotted field: (a's value, b's value)} for every leaf where two config dicts differ."""
    out: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out.update(_differences(x, y, f"{prefix}{key}."))
        elif x != y:
            out[prefix + key] = (x, y)
    return out


def _check_same_config(saved: Path, config: ExperimentConfig) -> None:
    previous = _with_defaults(read_json(saved, "experiment config"))
    changes = _differences(previous, json.loads(json.dumps(to_dict(config))))
    if changes:
        field, (old, new) = next(iter(changes.items()))
        raise ReadJaxError(f"{saved}: this directory holds a different experiment ({field} is {old!r} there, "
                           f"{new!r} here); use another --out, or --resume DIR {field}=VALUE to change it")


def _with_defaults(saved: Any) -> Any:
    """A saved experiment.json with the fields added since it was written (e.g. ``mesh``) at their
    defaults, as `to_dict` of the config it describes would write it now."""
    try:
        return json.loads(json.dumps(to_dict(from_dict(ExperimentConfig, saved))))
    except (ReadJaxError, TypeError):
        return saved


def _phase_totals(history: list[dict[str, Any]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for h in history:
        for k, v in h["timing"].items():
            totals[k] = totals.get(k, 0.0) + float(v)
    return totals


OVERHEAD_PHASES = ("probe", "bandit", "bookkeeping")


def overhead_share(phase_seconds: dict[str, float]) -> float:
    """Share of the intervals' wall time spent on ReAD's own machinery (probes, bandit, checkpoints),
    as opposed to teacher generation, student training and dev evaluation of the task."""
    total = sum(phase_seconds.values())
    return sum(phase_seconds.get(k, 0.0) for k in OVERHEAD_PHASES) / total if total > 0 else 0.0


def format_table(report: dict[str, Any]) -> str:
    """The demo's summary table: utility, tokens, per-phase wall time, profile per policy."""
    caps = report["capabilities"]
    short = [c[:6] for c in caps]
    lines = [f"task {report['task']}   budget {report['budget']['total_tokens']} tokens "
             f"({report['budget']['accounting']} accounting)   utility = {report.get('metric', 'exact_match')} on "
             f"{report['eval_split']}",
             f"{'policy':<10} {'utility':>8} {'tokens':>8} {'gen s':>7} {'train s':>8} {'probe s':>8} "
             f"{'bandit s':>9} {'dev s':>6} {'ovh %':>6}   " + " ".join(f"{s:>6}" for s in short)]
    init = report["initial"]
    lines.append(f"{'initial':<10} {init['utility']:>8.3f} {0:>8} {'':>7} {'':>8} {'':>8} {'':>9} {'':>6} {'':>6}   "
                 + " ".join(f"{init['profile'][c]:>6.2f}" for c in caps))
    for name, p in report["policies"].items():
        ph = p["phase_seconds"]
        lines.append(f"{name:<10} {p['utility']:>8.3f} {p['tokens_used']:>8} {ph.get('generate', 0):>7.1f} "
                     f"{ph.get('train', 0):>8.1f} {ph.get('probe', 0):>8.1f} {ph.get('bandit', 0):>9.1f} "
                     f"{ph.get('dev_eval', 0):>6.1f} {100 * p.get('overhead_share', 0.0):>6.1f}   " + " ".join(f"{p['profile'][c]:>6.2f}" for c in caps))
    t = report["teacher"]["profile"]
    teacher_u = report["teacher"].get("utility")
    lines.append(f"{'teacher':<10} {'' if teacher_u is None else f'{teacher_u:.3f}':>8} {'':>8} {'':>7} {'':>8} {'':>8} {'':>9} {'':>6} {'':>6}   "
                 + " ".join(f"{t[c]:>6.2f}" for c in caps))
    extras = sorted(init.get("extra_utility") or {})
    if extras:
        rows = [("initial", init), *report["policies"].items(), ("teacher", report["teacher"])]
        lines.append("extra benchmarks (test split): " + "; ".join(
            f"{name} " + " ".join(f"{e}={row['extra_utility'][e]:.3f}" for e in extras) for name, row in rows))
    req = report["requirement"]
    lines.append("requirement r (" + req["mode"] + "): " + " ".join(f"{v:.2f}" for v in req["estimated"]))
    if req["true"] is not None:
        lines.append("true r (hidden from ReAD):    " + " ".join(f"{v:.2f}" for v in req["true"]))
    lines.append("profile columns: mean log-likelihood of the teacher's probe answers under the model; "
                 "ovh % = probes + bandit + checkpointing, share of the intervals' wall time")
    return "\n".join(lines)
