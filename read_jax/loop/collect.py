"""One interval's generate-and-train phase: prompts drawn by the allocation, teacher answers, training.

`CollectPhase` is the part of `ReadRun` that spends tokens: it draws prompts by the bandit's
allocation, has the teacher answer them (generation tokens), keeps the answers worth training on,
cuts what does not fit the student pool and trains on it (training tokens), and in the run's last
interval re-passes that interval's answers until the budget is spent (equal spend).  It reads the
run's config, budget, samplers and distiller; `ReadRun` owns them and checkpoints them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from read_jax import faults
from read_jax.capabilities.probes import decode_answer
from read_jax.distill.batching import TokenExample, make_batches
from read_jax.errors import NumericalFault, ReadJaxError
from read_jax.evals.extract import check_format
from read_jax.generation_batches import generate_in_chunks


class Streams:
    """Where a run's random draws come from: ``fold_in`` offsets of the run's key.  The values are
    fixed (changing one changes every run's draws); each interval's own key is ``fold_in(key, t)``."""

    GENERATION = 1_000       # + call index, folded into the interval key: teacher sampling
    POLICY_INIT = 10_000     # the policy's initial state
    WARMUP_COMPILE = 20_000  # the throw-away select that compiles the policy at setup


@dataclasses.dataclass
class IntervalWork:
    """What one interval's generate-and-train phase did (token counts go to the history)."""

    per_cap: np.ndarray
    spent: dict[str, int] = dataclasses.field(default_factory=lambda: {
        "generated": 0, "prompt": 0, "label": 0, "padding": 0, "examples": 0, "unfinished": 0, "format_ok": 0,
        "too_long": 0, "repassed": 0, "indivisible": 0})
    losses: list[float] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def timed(timing: dict[str, float], phase: str):
    """Add the block's wall time to ``timing[phase]``."""
    tick = time.perf_counter()
    try:
        yield
    finally:
        timing[phase] = timing.get(phase, 0.0) + time.perf_counter() - tick


class CollectPhase:
    """The generate-and-train phase of a `ReadRun` interval (a mixin: the run holds the state it uses)."""

    def _collect(self, w: np.ndarray, timing: dict[str, float]) -> "IntervalWork":
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
        work = IntervalWork(per_cap=np.zeros(len(self.caps)))
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
                with timed(timing, "generate"):
                    prompts, prompt_ids, out = self._generate(w, n, call, work.spent)
                with timed(timing, "train"):
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
            with timed(timing, "train"):
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
        teacher_ids = prompt_ids
        if gen.rationale:  # the teacher is asked for its rationale; the student keeps the plain prompt
            teacher_ids = [self.components.encode_rationale_prompt(p.prompt) for p in prompts]
        key = jax.random.fold_in(self._interval_key(), Streams.GENERATION + call)
        out = generate_in_chunks(self.teacher_sampler, teacher_ids, max_rows=gen.prompts_per_call,
                                 max_new_tokens=gen.max_new_tokens, temperature=gen.temperature, top_p=gen.top_p,
                                 eos_id=self.components.tokenizer.eos_token_id, topk_logprobs=gen.topk_logprobs,
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
        topk = out.topk_ids is not None  # the Logit signal: the teacher's top-k at every answer token
        examples = [TokenExample(prompt_ids[i], out.tokens[i], out.topk_ids[i] if topk else None,
                                 out.topk_logprobs[i] if topk else None) for i in finished]
        keep = self.budget.fit_count((len(e.prompt), len(e.response)) for e in examples)
        if keep < len(examples):  # the first example that does not fit is cut to the tokens left
            rest = examples[keep]
            room = (self.budget.student_limit - self.budget.student_used
                    - sum(self.budget.training_cost(len(e.prompt), len(e.response)) for e in examples[:keep]))
            labels = room - (len(rest.prompt) if self.config.accounting == "artifact" else 0)
            cut = rest.with_label_limit(labels) if labels > 0 else None
            examples = examples[:keep] + ([cut] if cut is not None else [])
        return examples, [prompts[finished[j]].capability for j in range(len(examples))]

    def _train(self, examples: list[TokenExample], kept_caps: list[str], work: "IntervalWork") -> int:
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
