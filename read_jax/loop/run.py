"""The ReAD outer loop (method.md §6) as a resumable state machine.

```
r = requirement(τ); s = probe(S0); b = B
for t in 1..T:
    x = [r; s; b; ρ]                      ρ = previous allocation and profile change
    w = policy.select(x, actions)
    data = teacher answers prompts sampled by w          (generation tokens)
    S = distill(S, data)                                 (training tokens)
    s' = probe(S); R = reward(r, s' - s, cost); policy.update(x, w, R)
    at dev checkpoints: calibrate the reward scale, maybe shrink κ
```

One `ReadRun` owns everything that changes during a run: the student's parameters and
optimizer state (inside a `Distiller`), the policy state, the RNG key, the token budget,
the prompt sampler's cursor, the profile and the history.  After every interval it writes
one orbax checkpoint of all of it and rewrites ``history.jsonl`` from the checkpointed
history, so ``ReadRun.open`` on the same directory continues exactly where the run stopped
(the next interval sees the same parameters, budget, sampler state and keys).  The interval's
generate-and-train phase is `read_jax.loop.collect`.

The token budget is a hard limit: generation is only started when its worst case
(prompts × max_new_tokens) fits what is left of the teacher pool, and only the examples
that fit the student pool are trained on (the last one cut to the tokens left).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from read_jax import faults
from read_jax.bandit import (build_candidate_actions, calibrate, make_context, make_policy, pad_actions,
                             paper_action_set, proxy_reward)
from read_jax.bandit.guards import check_reward
from read_jax.capabilities.probes import ProbeSuite, fitting_probes, task_utility
from read_jax.checkpoint import RunCheckpointer
from read_jax.config import to_dict
from read_jax.distill.budget import TokenBudget
from read_jax.distill.train_step import Distiller
from read_jax.errors import NumericalFault, ReadJaxError
from read_jax.loop.collect import CollectPhase, IntervalWork, Streams, timed
from read_jax.loop.config import LoopConfig
from read_jax.run_files import as_path, make_dir, read_json, write_json, write_jsonl
from read_jax.sampling import Sampler
from read_jax.sources import Components


# ----------------------------------------------------------------------------- the run
def build_probe_suite(components: Components, config: LoopConfig, seed: int) -> ProbeSuite:
    """The fixed probe set (``config.probes_per_capability`` per capability, drawn with ``seed``, prompts
    over ``config.max_prompt_tokens`` left out), answered once by the teacher."""
    probes = fitting_probes(components.source, config.probes_per_capability, seed, components.encode_prompt,
                            config.max_prompt_tokens)
    return ProbeSuite(tuple(components.source.capabilities), probes, components.teacher, components.tokenizer,
                      components.encode_prompt, max_new_tokens=config.generation.max_new_tokens,
                      mesh=components.mesh, max_prompt_tokens=config.max_prompt_tokens)


class ReadRun(CollectPhase):
    """One policy's run at one budget; `run()` drives intervals until the budget or T is spent."""

    HISTORY = "history.jsonl"
    MAX_UNSPENT = 0.02  # of the budget, at the end of a run (equal spend)
    CHECKPOINTS = "checkpoints"
    RUN_FILE = "run.json"

    def __init__(self, config: LoopConfig, components: Components, run_dir: Path, requirement: Sequence[float],
                 probes: ProbeSuite, initial_profile: Sequence[float], *, progress: bool = True,
                 policy_kwargs: dict[str, Any] | None = None, dev_eval: bool = True):
        """The run's state at interval 0, in memory only (`open` is what starts or resumes a run on disk).

        ``initial_profile``: the student's profile on ``probes`` (runs from one student share it).
        ``dev_eval`` False: no task scoring at dev checkpoints (short pilot runs whose utility the
        experiment measures itself; the reward scale then stays 1)."""
        self.config, self.components = config, components
        self.dev_eval = dev_eval
        self.caps = tuple(components.source.capabilities)
        self.requirement = np.asarray(requirement, np.float64)
        if self.requirement.shape != (len(self.caps),):
            raise ReadJaxError(f"requirement has {self.requirement.shape} entries for {len(self.caps)} capabilities")
        if config.generation.rationale and components.encode_rationale_prompt is None:
            raise ReadJaxError("loop.generation.rationale: this source's teacher gives no rationales "
                               "(only the world's teacher does)")
        self.run_dir = as_path(run_dir)
        self.progress = progress
        self.probes = probes
        self.prompt_sampler = components.source.prompt_sampler(seed=config.seed, extra_eval_prompts=self.probes.prompts)
        self.teacher_sampler = Sampler(components.teacher, components.mesh)  # fixed: split and laid out once per run
        train = config.train
        teacher = components.teacher if train.loss.needs_teacher_logits else None
        # a private copy: the train step donates the student's buffers, and the caller's initial
        # student may seed several runs (one per policy)
        graphdef, state = nnx.split(components.student)
        student = nnx.merge(graphdef, jax.tree.map(jnp.copy, state))
        self.distiller = Distiller(student, teacher=teacher, loss_config=train.loss, optimizer_config=train.optimizer,
                                   mesh=components.mesh)
        b = config.bandit
        kwargs = dict(policy_kwargs or {})
        if config.policy.startswith("read_"):
            kwargs.setdefault("kappa", b.kappa)
        if b.warmup is not None and config.policy.startswith(("read_", "greedy")):
            kwargs.setdefault("warmup", b.warmup)
        if not b.shrink_kappa and config.policy.startswith("read_"):  # the ablation: κ kept at κ₀
            kwargs["kappa_decay"] = 1.0
        self.policy = make_policy(config.policy, n_caps=len(self.caps), **kwargs)
        self.actions = jnp.asarray(build_candidate_actions(
            list(self.caps), self.requirement.tolist(), 2, list(b.weight_grid), b.top_k, b.max_candidates,
            b.include_one_hot),
            jnp.float32)
        self.action_mask = None  # "sparse": the fixed set above, every row valid
        if b.action_set == "paper":  # rebuilt each interval (`step`), padded to the largest it can be
            pool = min(max(1, b.top_k), len(self.caps))
            sparse = build_candidate_actions(list(self.caps), self.requirement.tolist(), 2, list(b.weight_grid),
                                             b.top_k, 10**9, b.include_one_hot)
            self.n_actions = min(b.max_candidates, 1 + pool * (pool - 1) + len(sparse))
            self.actions, self.action_mask = pad_actions(self.actions.tolist(), self.n_actions)
        self.key = jax.random.key(config.seed)
        self.policy_state = self.policy.init(jax.random.fold_in(self.key, Streams.POLICY_INIT))
        self.budget = TokenBudget(config.budget_tokens, config.accounting)
        self.t = 0
        self.profile = np.array(initial_profile, np.float64)
        self.w_prev = np.zeros(len(self.caps))
        self.ds_prev = np.zeros(len(self.caps))
        self.cum_proxy = 0.0
        self.reward_scale = 1.0
        self.dev_points: list[tuple[float, float]] = []  # (cumulative proxy, dev utility)
        self.next_dev = config.dev_every
        self.history: list[dict[str, Any]] = []
        self.initial_profile = self.profile.copy()

    @classmethod
    def open(cls, config: LoopConfig, components: Components, run_dir: str | Path, requirement: Sequence[float],
             *, probes: ProbeSuite | None = None, initial_profile: Sequence[float] | None = None,
             progress: bool = True, policy_kwargs: dict[str, Any] | None = None, dev_eval: bool = True) -> "ReadRun":
        """Start the run in ``run_dir``, or continue it from its latest checkpoint when it has one.

        The one-time work lives here, not in the constructor: the teacher answers the probes (unless
        given), the student is probed (unless ``initial_profile`` is given), the policy is compiled
        on the run's shapes, and ``run.json`` records the config and requirement for ``--resume``."""
        probes = probes or build_probe_suite(components, config, config.seed)
        if initial_profile is None:
            initial_profile = probes.loglik(components.student)
        run_dir = make_dir(run_dir)
        run = cls(config, components, run_dir, requirement, probes, initial_profile, progress=progress,
                  policy_kwargs=policy_kwargs, dev_eval=dev_eval)
        run._compile_policy()
        run_file = run_dir / cls.RUN_FILE
        if not run_file.exists():
            write_json(run_file, {"config": to_dict(config), "requirement": run.requirement.tolist()})
        if run.has_checkpoint():
            run.load()
        return run

    @functools.cached_property
    def _ckpt(self) -> RunCheckpointer:
        return RunCheckpointer(self.run_dir / self.CHECKPOINTS, max_to_keep=2)

    def _compile_policy(self) -> None:
        """Run the policy's select and update once on this run's shapes and throw the results away:
        XLA compiles them at setup instead of inside the first interval's bandit time (one-time
        work that is not per-interval overhead).  The policy is pure, so its state is unchanged."""
        x = self._context(1.0)
        w, state = self.policy.select(self.policy_state, x, self.actions,
                                      jax.random.fold_in(self.key, Streams.WARMUP_COMPILE),
                                      self.action_mask)
        w = np.asarray(jax.device_get(w), np.float64)
        jax.block_until_ready(self.policy.update(state, x, jnp.asarray(w, jnp.float32), jnp.asarray(0.0, jnp.float32),
                                                 delta_s=jnp.zeros(len(self.caps), jnp.float32)))

    # -- one interval ----------------------------------------------------------------------
    def done(self) -> bool:
        return self.t >= self.config.intervals or self.budget.exhausted

    def step(self) -> dict[str, Any]:
        """One interval, phase by phase: select → generate + train → probe → reward → dev eval → record."""
        timing: dict[str, float] = {}
        with timed(timing, "bandit"):
            x = self._context(self.budget.remaining / max(self.budget.limit, 1))
            w = self._select(x)
        work = self._collect(w, timing)
        with timed(timing, "probe"):
            s_new = self._probe()
        with timed(timing, "bandit"):
            ds, proxy, reward = self._reward(x, w, s_new, work)
        dev = None
        if self._dev_due():
            with timed(timing, "dev_eval"):
                dev = self._dev_eval()
        record = {
            "step": self.t,
            "allocation": [round(float(v), 6) for v in w],
            "examples_per_capability": work.per_cap.astype(int).tolist(),
            "tokens": work.spent,
            "budget": {"used": self.budget.used, "remaining": self.budget.remaining,
                       "teacher_used": self.budget.teacher_used, "student_used": self.budget.student_used},
            "profile": self.probes.as_dict(s_new),
            "delta_profile": [float(v) for v in ds],
            "proxy_reward": proxy,
            "reward": reward,
            "reward_scale": self.reward_scale,
            "train_loss": float(np.mean(work.losses)) if work.losses else None,
            "dev_utility": dev,
            "timing": timing,
        }
        self.profile, self.w_prev, self.ds_prev = s_new, w, ds
        self.t += 1
        self.history.append(record)
        with timed(timing, "bookkeeping"):
            self.save()
        self._write_history()  # again, now with the bookkeeping time
        return record

    # -- the phases of an interval -------------------------------------------------------------
    def _context(self, budget_left: float) -> jax.Array:
        """x = [r; s; b; ρ], ρ = (previous allocation, previous profile change), zeroed when
        ``bandit.context_rho`` is off (the ablation; the artifact's context has no ρ)."""
        rho = (self.w_prev, self.ds_prev) if self.config.bandit.context_rho else (np.zeros_like(self.w_prev),) * 2
        return make_context(self.requirement, self.profile, budget_left, *rho)

    def _interval_key(self) -> jax.Array:
        """This interval's key: the bandit selects with it; generation calls fold `Streams.GENERATION` in."""
        return jax.random.fold_in(self.key, self.t)

    def _select(self, x: jax.Array) -> np.ndarray:
        """The bandit's allocation for this interval, from the fixed action set or (``action_set=paper``)
        local moves around the previous allocation plus the sparse set."""
        actions, mask, b = self.actions, self.action_mask, self.config.bandit
        if b.action_set == "paper" and self.t > 0:  # local moves around the previous allocation + the sparse set
            actions, mask = pad_actions(paper_action_set(
                list(self.caps), self.requirement.tolist(), self.w_prev.tolist(), b.local_step, list(b.weight_grid),
                b.top_k,
                b.max_candidates, b.include_one_hot), self.n_actions)
        w, self.policy_state = self.policy.select(self.policy_state, x, actions, self._interval_key(), mask)
        return np.asarray(jax.device_get(w), np.float64)

    def _probe(self) -> np.ndarray:
        """The student's profile s' on the fixed probes (a non-finite score stops the run)."""
        s_new = self.probes.loglik(self.distiller.student)
        bad = [cap for cap, v in zip(self.caps, s_new) if not np.isfinite(v)]
        if bad:
            raise NumericalFault(self._fault_where() + f"probe score of {bad[0]!r} is {s_new[self.caps.index(bad[0])]}")
        faults.point("probe")
        return s_new

    def _reward(self, x: jax.Array, w: np.ndarray, s_new: np.ndarray, work: IntervalWork):
        """The proxy reward of the profile change (task gain, spillover penalty, token cost), scaled by the
        dev calibration, and the bandit's update with it."""
        b, spent = self.config.bandit, work.spent
        ds = s_new - self.profile
        cost = spent["generated"] + spent["prompt"] + spent["label"]
        proxy = float(proxy_reward(self.requirement, ds, cost, b.beta, b.cost_lambda, b.top_k))
        reward = self.reward_scale * proxy
        check_reward(reward, self._fault_where() + f"reward = reward_scale {self.reward_scale!r} x proxy {proxy!r}")
        self.policy_state = self.policy.update(self.policy_state, x, jnp.asarray(w, jnp.float32), reward,
                                               delta_s=jnp.asarray(ds, jnp.float32))
        self.cum_proxy += proxy
        faults.point("bandit")
        return ds, proxy, reward

    def _dev_due(self) -> bool:
        return self.dev_eval and (self.budget.progress + 1e-9 >= self.next_dev
                                  or self.t + 1 >= self.config.intervals or self.budget.exhausted)

    def _dev_eval(self) -> float:
        """Task utility on the profiling split: recalibrates the reward scale (unless ``bandit.calibrate``
        is off) and lets the policy shrink κ (by its ``kappa_decay``: 1 with ``bandit.shrink_kappa`` off)."""
        gen = self.config.generation
        c = self.components
        dev = task_utility(self.distiller.student, c.task, c.tokenizer, c.encode_prompt, "dev",
                           max_new_tokens=gen.eval_tokens, mesh=self.components.mesh)
        self.dev_points.append((self.cum_proxy, dev))
        if self.config.bandit.calibrate:
            cal = calibrate([p for p, _ in self.dev_points], [u for _, u in self.dev_points])
            self.reward_scale = float(cal.reward_scale)
        self.policy_state = self.policy.on_checkpoint(self.policy_state, dev)
        while self.next_dev <= self.budget.progress + 1e-9:
            self.next_dev += self.config.dev_every
        faults.point("dev_eval")
        return dev

    def run(self) -> dict[str, Any]:
        bar = tqdm(total=self.config.intervals, initial=self.t, desc=f"ReAD {self.config.policy}",
                   disable=not self.progress, unit="interval")
        try:
            while not self.done():
                rec = self.step()
                bar.update(1)
                bar.set_postfix(used=f"{self.budget.used}/{self.budget.limit}",
                                dev="-" if rec["dev_utility"] is None else f"{rec['dev_utility']:.2f}")
        finally:  # however the run stops (a numerical fault included), the last good checkpoint is on disk
            bar.close()
            self.flush()
        self._check_equal_spend()
        return self.summary()

    def _check_equal_spend(self) -> None:
        """A policy that ends with more than `MAX_UNSPENT` of its budget unspent is not comparable with
        the others at equal budget: stop loudly instead of reporting it."""
        unspent, limit = self.budget.remaining, self.budget.limit
        indivisible = self.history[-1]["tokens"].get("indivisible", 0) if self.history else 0
        if unspent > max(self.MAX_UNSPENT * limit, indivisible):
            raise ReadJaxError(
                f"{self.run_dir}: policy {self.config.policy} ended with {unspent} of its {limit} tokens unspent "
                f"(more than {self.MAX_UNSPENT:.0%}), so it is not at equal spend: its last interval had no finished "
                "teacher answer to train on again; raise loop.generation.max_new_tokens or set "
                "loop.generation.keep_unfinished=true")

    def _fault_where(self) -> str:
        return (f"{self.run_dir}: interval {self.t} (0-based; the last good checkpoint is interval {self.t - 1}"
                if self.t else f"{self.run_dir}: interval 0 (no checkpoint yet") + ") stopped: "

    # -- results -----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {
            "policy": self.config.policy,
            "tokens_used": self.budget.used,
            "budget": self.budget.state_dict(),
            "intervals": self.t,
            "allocations": [h["allocation"] for h in self.history],
            "dev_utility": [h["dev_utility"] for h in self.history if h["dev_utility"] is not None],
            "profile": self.probes.as_dict(self.profile),
            "initial_profile": self.probes.as_dict(self.initial_profile),
        }

    @property
    def student(self):
        return self.distiller.student

    # -- checkpoints ---------------------------------------------------------------------------
    def _trees(self) -> dict[str, Any]:
        return {"params": self.distiller.params, "opt_state": self.distiller.opt_state,
                "policy": self.policy_state, "key": jax.random.key_data(self.key)}

    def _meta(self) -> dict[str, Any]:
        return {
            "t": self.t, "config": to_dict(self.config), "requirement": self.requirement.tolist(),
            "budget": self.budget.state_dict(), "sampler": self.prompt_sampler.state_dict(),
            "s": self.profile.tolist(), "initial_profile": self.initial_profile.tolist(),
            "w_prev": self.w_prev.tolist(), "ds_prev": self.ds_prev.tolist(),
            "cum_proxy": self.cum_proxy, "reward_scale": self.reward_scale,
            "dev_points": [list(p) for p in self.dev_points], "next_dev": self.next_dev,
            "history": self.history,
        }

    def has_checkpoint(self) -> bool:
        return self._ckpt.latest_step() is not None

    def save(self) -> None:
        """Checkpoint the state after interval ``t`` (written in the background, see `flush`)."""
        self._ckpt.save(self.t, self._trees(), self._meta())

    def flush(self) -> None:
        """Block until the latest interval's checkpoint is on disk (`run` ends with it); a run killed
        while a write is pending resumes from the interval before."""
        self._ckpt.wait()

    def _write_history(self) -> None:
        write_jsonl(self.run_dir / self.HISTORY, self.history)

    def _check_history_file(self) -> None:
        """history.jsonl is only ever replaced whole (`write_jsonl`), so a line that does not parse means the file
        was damaged afterwards: refuse to resume over it rather than rewrite it from the checkpoint unasked."""
        path = self.run_dir / self.HISTORY
        if not path.exists():
            return
        for i, line in enumerate(path.read_bytes().decode("utf-8", "replace").splitlines(), 1):
            try:
                json.loads(line)
            except json.JSONDecodeError:
                raise ReadJaxError(f"{path}: line {i} is truncated or corrupt; restore the file, or delete it to "
                                   "rebuild it from the checkpoint") from None

    def load(self, step: int | None = None) -> None:
        """Restore the state of a saved interval (the latest by default) into this run."""
        self._check_history_file()
        trees, meta = self._ckpt.restore(self._trees(), step=step)
        self.distiller.load_state({"params": trees["params"], "opt_state": trees["opt_state"]})
        self.policy_state = trees["policy"]
        self.key = jax.random.wrap_key_data(trees["key"])
        self.t = int(meta["t"])
        self.budget = TokenBudget.from_state_dict(meta["budget"])
        self.prompt_sampler.load_state_dict(meta["sampler"])
        self.profile = np.asarray(meta["s"])
        self.initial_profile = np.asarray(meta["initial_profile"])
        self.w_prev, self.ds_prev = np.asarray(meta["w_prev"]), np.asarray(meta["ds_prev"])
        self.cum_proxy, self.reward_scale = float(meta["cum_proxy"]), float(meta["reward_scale"])
        self.dev_points = [tuple(p) for p in meta["dev_points"]]
        self.next_dev = float(meta["next_dev"])
        self.history = list(meta["history"])
        self._write_history()


def read_saved_config(run_dir: str | Path) -> tuple[dict[str, Any], list[float]]:
    """The config dict and requirement a run was started with (to rebuild it for --resume)."""
    path = as_path(run_dir) / ReadRun.RUN_FILE
    if not path.is_file():
        raise ReadJaxError(f"{run_dir}: not a run directory ({ReadRun.RUN_FILE} not found)")
    data = read_json(path, "run config")
    return data["config"], data["requirement"]
