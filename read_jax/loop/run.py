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
history, so ``ReadRun.resume(run_dir, components)`` continues exactly where the run stopped
(the next interval sees the same parameters, budget, sampler state and keys).

The token budget is a hard limit: generation is only started when its worst case
(prompts × max_new_tokens) fits what is left of the teacher pool, and only the examples
that fit the student pool are trained on (the last one cut to the tokens left).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from read_jax.bandit import (build_candidate_actions, calibrate, make_context, make_policy, pad_actions,
                             paper_action_set, proxy_reward)
from read_jax.bandit.guards import check_reward
from read_jax.capabilities.probes import ProbeSuite, fitting_probes, decode_answer, task_utility
from read_jax.checkpoint import RunCheckpointer
from read_jax.config import to_dict
from read_jax.distill.batching import TokenExample, make_batches
from read_jax.distill.budget import TokenBudget
from read_jax.distill.train_step import Distiller
from read_jax import faults
from read_jax.errors import NumericalFault, ReadJaxError
from read_jax.evals.extract import check_format
from read_jax.run_files import as_path, make_dir, read_json, write_json, write_jsonl
from read_jax.sources import Components
from read_jax.generation_batches import generate_in_chunks
from read_jax.loop.config import LoopConfig
from read_jax.sampling import Sampler


# ----------------------------------------------------------------------------- the run
def build_probe_suite(components: Components, config: LoopConfig, seed: int) -> ProbeSuite:
    """The fixed probe set (``config.probes_per_capability`` per capability, drawn with ``seed``, prompts
    over ``config.max_prompt_tokens`` left out), answered once by the teacher."""
    probes = fitting_probes(components.source, config.probes_per_capability, seed, components.encode_prompt,
                            config.max_prompt_tokens)
    return ProbeSuite(tuple(components.source.capabilities), probes, components.teacher, components.tokenizer,
                      components.encode_prompt, max_new_tokens=config.generation.max_new_tokens,
                      mesh=components.mesh, max_prompt_tokens=config.max_prompt_tokens)


class Streams:
    """Where a run's random draws come from: ``fold_in`` offsets of the run's key.  The values are
    fixed (changing one changes every run's draws); each interval's own key is ``fold_in(key, t)``."""

    GENERATION = 1_000       # + call index, folded into the interval key: teacher sampling
    POLICY_INIT = 10_000     # the policy's initial state
    WARMUP_COMPILE = 20_000  # the throw-away select that compiles the policy at setup


@dataclasses.dataclass
class _IntervalWork:
    """What one interval's generate-and-train phase did (token counts go to the history)."""

    per_cap: np.ndarray
    spent: dict[str, int] = dataclasses.field(default_factory=lambda: {
        "generated": 0, "prompt": 0, "label": 0, "padding": 0, "examples": 0, "unfinished": 0, "format_ok": 0,
        "too_long": 0, "repassed": 0, "indivisible": 0})
    losses: list[float] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def _timed(timing: dict[str, float], phase: str):
    """Add the block's wall time to ``timing[phase]``."""
    tick = time.perf_counter()
    try:
        yield
    finally:
        timing[phase] = timing.get(phase, 0.0) + time.perf_counter() - tick


class ReadRun:
    """One policy's run at one budget; `run()` drives intervals until the budget or T is spent."""

    HISTORY = "history.jsonl"
    MAX_UNSPENT = 0.02  # of the budget, at the end of a run (equal spend)
    CHECKPOINTS = "checkpoints"
    RUN_FILE = "run.json"

    def __init__(self, config: LoopConfig, components: Components, run_dir: str | Path,
                 requirement: Sequence[float], probes: ProbeSuite | None = None, progress: bool = True,
                 policy_kwargs: dict[str, Any] | None = None, dev_eval: bool = True,
                 initial_profile: Sequence[float] | None = None):
        """``dev_eval`` False: no task scoring at dev checkpoints (short pilot runs whose utility the
        experiment measures itself; the reward scale then stays 1).  ``initial_profile``: the
        student's profile on ``probes`` when the caller has it (runs from one student share it)."""
        self.config, self.components = config, components
        self.dev_eval = dev_eval
        self.caps = tuple(components.source.capabilities)
        self.requirement = np.asarray(requirement, np.float64)
        if self.requirement.shape != (len(self.caps),):
            raise ReadJaxError(f"requirement has {self.requirement.shape} entries for {len(self.caps)} capabilities")
        self.run_dir = make_dir(run_dir)
        self.progress = progress
        self.probes = probes or build_probe_suite(components, config, config.seed)
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
        self.profile = (self.probes.loglik(self.distiller.student) if initial_profile is None
                        else np.array(initial_profile, np.float64))
        self.w_prev = np.zeros(len(self.caps))
        self.ds_prev = np.zeros(len(self.caps))
        self.cum_proxy = 0.0
        self.reward_scale = 1.0
        self.dev_points: list[tuple[float, float]] = []  # (cumulative proxy, dev utility)
        self.next_dev = config.dev_every
        self.history: list[dict[str, Any]] = []
        self.initial_profile = self.profile.copy()
        self._compile_policy()
        self._ckpt = RunCheckpointer(self.run_dir / self.CHECKPOINTS, max_to_keep=2)
        run_file = self.run_dir / self.RUN_FILE
        if not run_file.exists():
            write_json(run_file, {"config": to_dict(config), "requirement": self.requirement.tolist()})

    def _compile_policy(self) -> None:
        """Run the policy's select and update once on this run's shapes and throw the results away:
        XLA compiles them at setup instead of inside the first interval's bandit time (one-time
        work that is not per-interval overhead).  The policy is pure, so its state is unchanged."""
        x = make_context(self.requirement, self.profile, 1.0, self.w_prev, self.ds_prev)
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
        with _timed(timing, "bandit"):
            x = make_context(self.requirement, self.profile, self.budget.remaining / max(self.budget.limit, 1),
                             self.w_prev, self.ds_prev)
            w = self._select(x)
        work = self._collect(w, timing)
        with _timed(timing, "probe"):
            s_new = self._probe()
        with _timed(timing, "bandit"):
            ds, proxy, reward = self._reward(x, w, s_new, work)
        dev = None
        if self._dev_due():
            with _timed(timing, "dev_eval"):
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
        with _timed(timing, "bookkeeping"):
            self.save()
        self._write_history()  # again, now with the bookkeeping time
        return record

    # -- the phases of an interval -------------------------------------------------------------
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

    def _collect(self, w: np.ndarray, timing: dict[str, float]) -> "_IntervalWork":
        """Teacher answers for prompts drawn by ``w``, trained on as they come, until this interval's share
        of what is left of the student (training) pool is spent.

        The last interval (or the one in which the training pool runs dry, which ends the run) pools
        the budget (`TokenBudget.pool`): training may also spend what the teacher pool leaves, on
        fresh answers while the teacher may generate, then on re-passes over this interval's answers
        (as the artifact re-passes its data to fill its training pool), so every policy ends having
        spent its whole budget (equal spend; docs/deviations.md)."""
        cfg, gen = self.config, self.config.generation
        left_intervals = cfg.intervals - self.t
        last = left_intervals <= 1
        if last:
            self.budget.pool()
        student_left = self.budget.student_limit - self.budget.student_used
        target = student_left // left_intervals
        work = _IntervalWork(per_cap=np.zeros(len(self.caps)))
        timing["generate"] = timing["train"] = 0.0
        fresh: list[tuple[TokenExample, str]] = []
        call = trained = 0
        while True:
            while (last or trained < target) and not self.budget.exhausted:
                n = gen.prompts_per_call
                allowance = self.budget.generation_allowance()
                if allowance is not None:
                    n = min(n, allowance // gen.max_new_tokens)
                    if n == 0:
                        break
                with _timed(timing, "generate"):
                    prompts, prompt_ids, out = self._generate(w, n, call, work.spent)
                with _timed(timing, "train"):
                    examples, kept_caps = self._examples(prompts, prompt_ids, out, work.spent)
                    trained += self._train(examples, kept_caps, work)
                fresh += zip(examples, kept_caps)
                call += 1
                if not examples:
                    break
            if last or not self.budget.exhausted:
                break
            # the training pool ran dry before the last interval: this interval is the run's last
            last = True
            self.budget.pool()
        if last and fresh and not self.budget.exhausted:
            with _timed(timing, "train"):
                examples, kept_caps = self._repasses(fresh)
                work.spent["repassed"] += len(examples)
                self._train(examples, kept_caps, work)
            # fewer tokens than the shortest prompt + one label: no example can use them
            work.spent["indivisible"] = self.budget.student_limit - self.budget.student_used
        return work

    def _repasses(self, fresh: list[tuple[TokenExample, str]]) -> tuple[list[TokenExample], list[str]]:
        """This interval's examples again, in order and cyclically, filling the student's room: when the
        next one does not fit, one (the next first) is cut to exactly the tokens left, else a smaller
        one that fits whole is taken and the search goes on."""
        room = self.budget.student_limit - self.budget.student_used
        prompt_cost = self.config.accounting == "artifact"
        costs = [self.budget.training_cost(len(ex.prompt), len(ex.response)) for ex, _ in fresh]
        examples, caps = [], []
        i = 0
        while room > 0:
            order = [(i + j) % len(fresh) for j in range(len(fresh))]  # the next one first
            if costs[order[0]] <= room:
                pick, cut = order[0], None
            else:
                exact = next((k for k in order
                              if 0 < room - len(fresh[k][0].prompt) * prompt_cost <= len(fresh[k][0].response)), None)
                whole = next((k for k in order if costs[k] <= room), None)
                if exact is None and whole is None:
                    break
                pick = whole if exact is None else exact
                cut = None if exact is None else room - len(fresh[exact][0].prompt) * prompt_cost
            ex, cap = fresh[pick]
            ex = ex if cut is None else ex.with_label_limit(cut)
            examples.append(ex)
            caps.append(cap)
            room -= self.budget.training_cost(len(ex.prompt), len(ex.response))
            i = pick + 1
        return examples, caps

    def _generate(self, w: np.ndarray, n: int, call: int, spent: dict[str, int]):
        """``n`` prompts drawn by ``w`` and the teacher's sampled answers (their tokens charged)."""
        gen = self.config.generation
        prompts, prompt_ids = self._draw_prompts(w, n, spent)
        key = jax.random.fold_in(self._interval_key(), Streams.GENERATION + call)
        out = generate_in_chunks(self.teacher_sampler, prompt_ids, max_rows=gen.prompts_per_call,
                                 max_new_tokens=gen.max_new_tokens, temperature=gen.temperature, top_p=gen.top_p,
                                 eos_id=self.components.tokenizer.eos_token_id,
                                 seed=int(jax.random.randint(key, (), 0, 2**30)))
        faults.point("generate")
        generated = sum(len(t) for t in out.tokens)
        self.budget.charge_generation(generated)
        spent["generated"] += generated
        return prompts, prompt_ids, out

    def _examples(self, prompts, prompt_ids, out, spent: dict[str, int]) -> tuple[list[TokenExample], list[str]]:
        """The answers worth training on, cut to what fits the student pool, with their capabilities.

        An answer cut off by max_new_tokens has no eos: training on it would teach the student never to
        stop, so only finished answers are kept (their generation tokens are still charged)."""
        gen = self.config.generation
        finished = [i for i, (toks, fin) in enumerate(zip(out.tokens, out.finished))
                    if toks and (fin or gen.keep_unfinished)]
        obeys = [self._obeys_format(prompts[i], out.tokens[i]) for i in finished]
        spent["format_ok"] += sum(obeys)
        if gen.require_format:
            finished = [i for i, ok in zip(finished, obeys) if ok]
        spent["unfinished"] += len(out.tokens) - len(finished)
        examples = [TokenExample(prompt_ids[i], out.tokens[i]) for i in finished]
        keep = self.budget.fit_count((len(e.prompt), len(e.response)) for e in examples)
        if keep < len(examples):  # the first example that does not fit is cut to the tokens left
            rest = examples[keep]
            room = (self.budget.student_limit - self.budget.student_used
                    - sum(self.budget.training_cost(len(e.prompt), len(e.response)) for e in examples[:keep]))
            labels = room - (len(rest.prompt) if self.config.accounting == "artifact" else 0)
            cut = rest.with_label_limit(labels) if labels > 0 else None
            examples = examples[:keep] + ([cut] if cut is not None else [])
        return examples, [prompts[finished[j]].capability for j in range(len(examples))]

    def _train(self, examples: list[TokenExample], kept_caps: list[str], work: "_IntervalWork") -> int:
        """One optimizer step per batch of ``examples``; returns the training tokens charged."""
        cfg, spent, trained = self.config, work.spent, 0
        batches, dropped = make_batches(examples, cfg.train.rows, max_length=cfg.train.max_length,
                                        pad_id=self.components.tokenizer.pad_token_id)
        for batch in batches:
            self.budget.charge_batch(batch)
            if faults.nan_here("train"):  # test hook: corrupt weights, the real step computes nan
                self.distiller.params = jax.tree.map(lambda p: p * jnp.nan, self.distiller.params)
            metrics = self.distiller.step(batch.arrays)
            self._check_finite(metrics, batch_index=len(work.losses))
            work.losses.append(metrics["loss"])
            faults.point("train")
            spent["prompt"] += batch.prompt_tokens
            spent["label"] += batch.label_tokens
            spent["padding"] += batch.padding_tokens
            trained += self.budget.training_cost(batch.prompt_tokens, batch.label_tokens)
            for i in batch.indices:
                work.per_cap[self.caps.index(kept_caps[i])] += 1
        spent["examples"] += len(examples) - len(dropped)
        return trained

    def _probe(self) -> np.ndarray:
        """The student's profile s' on the fixed probes (a non-finite score stops the run)."""
        s_new = self.probes.loglik(self.distiller.student)
        bad = [cap for cap, v in zip(self.caps, s_new) if not np.isfinite(v)]
        if bad:
            raise NumericalFault(self._fault_where() + f"probe score of {bad[0]!r} is {s_new[self.caps.index(bad[0])]}")
        faults.point("probe")
        return s_new

    def _reward(self, x: jax.Array, w: np.ndarray, s_new: np.ndarray, work: "_IntervalWork"):
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
        """Task utility on the profiling split: recalibrates the reward scale and may shrink κ."""
        gen = self.config.generation
        c = self.components
        dev = task_utility(self.distiller.student, c.task, c.tokenizer, c.encode_prompt, "dev",
                           max_new_tokens=gen.eval_tokens, mesh=self.components.mesh)
        self.dev_points.append((self.cum_proxy, dev))
        cal = calibrate([p for p, _ in self.dev_points], [u for _, u in self.dev_points])
        self.reward_scale = float(cal.reward_scale)
        self.policy_state = self.policy.on_checkpoint(self.policy_state, dev)
        while self.next_dev <= self.budget.progress + 1e-9:
            self.next_dev += self.config.dev_every
        faults.point("dev_eval")
        return dev

    def _draw_prompts(self, w: np.ndarray, n: int, spent: dict[str, int]) -> tuple[list[Any], list[list[int]]]:
        """``n`` prompts drawn by allocation ``w`` with their token ids; prompts over
        ``max_prompt_tokens`` are redrawn (counted in ``tokens.too_long``)."""
        limit, rejected_in_a_row = self.config.max_prompt_tokens, 0
        prompts, ids = [], []
        while len(prompts) < n:
            prompt = self.prompt_sampler.draw(w, progress=self.budget.progress)
            encoded = self.components.encode_prompt(prompt.prompt)
            if limit and len(encoded) > limit:
                spent["too_long"] += 1
                rejected_in_a_row += 1
                if rejected_in_a_row >= 1000:
                    raise ReadJaxError(f"loop.max_prompt_tokens={limit}: 1000 prompts in a row were longer "
                                       f"(last of capability {prompt.capability!r}); raise it")
                continue
            rejected_in_a_row = 0
            prompts.append(prompt)
            ids.append(encoded)
        return prompts, ids

    def _obeys_format(self, prompt: Any, tokens: Sequence[int]) -> bool:
        """Whether the teacher's answer obeys its template's output format (templates without one: True).
        Counted per interval (``tokens.format_ok``); with ``generation.require_format`` the others are
        not trained on."""
        fmt = prompt.info.get("output_format") if getattr(prompt, "info", None) else None
        if not fmt:
            return True
        return check_format(fmt, decode_answer(self.components.tokenizer, tokens))

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

    def _check_finite(self, metrics: dict[str, float], batch_index: int) -> None:
        """Stop at the first non-finite loss or gradient, before it reaches a checkpoint (the step's
        metrics are already on the host, so this costs no extra device sync)."""
        for name in ("loss", "grad_norm"):
            value = metrics.get(name)
            if value is not None and not np.isfinite(value):
                raise NumericalFault(
                    self._fault_where() + f"{name} is {value} at optimizer step {self.distiller.step_count - 1}, "
                    f"batch {batch_index} of the interval; resume with --resume DIR and a changed setting, "
                    "e.g. loop.train.optimizer.learning_rate=...")

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
