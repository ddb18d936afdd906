"""What a ReAD run is configured by: the teacher's generation, the student's training (the
distillation step's own optimizer and loss configs), the bandit's reward and action set, and the
loop around them.  Frozen dataclasses, read from YAML and ``key.sub=value`` overrides
(`read_jax.config`); every check names its field."""

from __future__ import annotations

import dataclasses
from typing import Literal

from read_jax.distill.losses import LossConfig
from read_jax.distill.train_step import OptimizerConfig
from read_jax.errors import ReadJaxError


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """Teacher answers (artifact: temperature 0.2, top-p 0.95)."""

    max_new_tokens: int = 24
    temperature: float = 0.2
    top_p: float = 0.95
    prompts_per_call: int = 64
    # answers cut off by max_new_tokens have no eos; training on them teaches the student not to stop
    keep_unfinished: bool = False
    # greedy tokens per answer when the task is scored (dev checkpoints, final report); 0: max_new_tokens
    eval_max_new_tokens: int = 0
    # train only on answers that obey their template's output format (real packs declare one per template)
    require_format: bool = False
    # the teacher's top-k log-probs captured with every generated token (the Logit teacher signal: soft
    # targets for `train.loss.topk_kl`, no teacher forward in training); 0: not captured
    topk_logprobs: int = 0
    # ask the teacher for a rationale before its answer (the CoT teacher signal): its prompt carries the
    # source's rationale request, the student is trained on the plain prompt -> "rationale; answer".
    # Answers are longer: raise max_new_tokens (and eval_max_new_tokens: the student answers so too)
    rationale: bool = False

    @property
    def eval_tokens(self) -> int:
        return self.eval_max_new_tokens or self.max_new_tokens

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.prompts_per_call < 1 or self.eval_max_new_tokens < 0:
            raise ReadJaxError("generation.max_new_tokens and generation.prompts_per_call must be >= 1, "
                               "generation.eval_max_new_tokens >= 0")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ReadJaxError("generation.temperature must be >= 0 and generation.top_p in (0, 1]")
        if self.topk_logprobs < 0:
            raise ReadJaxError(f"generation.topk_logprobs must be >= 0, got {self.topk_logprobs}")


def _loop_optimizer() -> OptimizerConfig:
    """AdamW at 1e-3 without weight decay: short distillations from a pretrained student, where
    decaying every matrix toward zero would undo what it knows faster than the budget teaches."""
    return OptimizerConfig(learning_rate=1e-3, weight_decay=0.0)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Student updates on (prompt, teacher answer) pairs: rows per update, the longest sequence,
    and the distillation step's own configs -- `OptimizerConfig` (learning rate, warm-up over the
    run's first updates, clipping, ...) and `LossConfig` (token-level CE, ReAD's objective; a
    ``kl`` weight > 0 adds forward KL to the teacher's logits, computed in the step).

    The loss's default ``chunk_size: auto`` trains through the chunked path (`distill.chunked`):
    measured as fast as or faster than dense logits at every size tried, and the logits'
    memory stays bounded for large vocabularies (``null`` forces the dense path).  A fresh Adam's first steps move every weight by
    about ±learning_rate whatever its gradient, which wipes out much of what a small student
    knows: ``optimizer.warmup_steps`` ramps the rate up linearly instead.
    """

    rows: int = 32
    max_length: int = 128
    optimizer: OptimizerConfig = dataclasses.field(default_factory=_loop_optimizer)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if self.rows < 1 or self.max_length < 8:
            raise ReadJaxError("train.rows >= 1 and train.max_length >= 8 are required")
        if not callable(self.optimizer.learning_rate) and self.optimizer.learning_rate <= 0:
            raise ReadJaxError(f"train.optimizer.learning_rate must be > 0, got {self.optimizer.learning_rate}")


@dataclasses.dataclass(frozen=True)
class BanditConfig:
    """Reward and action set (artifact defaults: β = 0.5, λ = 1e-5 per token, pairs of the top 3).

    ``action_set``: ``"sparse"`` (default) is the artifact's fixed set, built once: pairs of the
    top-k capabilities on ``weight_grid`` (plus their one-hots with ``include_one_hot``, which the
    artifact's ``read.yml`` turns off).  ``"paper"`` is the paper's A(τ), rebuilt every interval
    (`paper_action_set`): the previous allocation, its local moves of ``local_step`` mass between
    two top-k capabilities, then the sparse set; the first interval (no previous allocation) plays
    the sparse set.  It is padded to one fixed size with a mask, so the jitted policy compiles once.
    ``local_step``: the mass a local move shifts (neither the paper's text we follow nor the artifact,
    which builds no local moves, gives one; 0.1 is ours).  ``warmup``: uniformly random first
    decisions for the ReAD learners (read_*, greedy*); None keeps each policy's own (0 for the BLR
    ones, 5 for the ensembles).  The paper's way: ``loop.policy=read_paper
    loop.bandit.action_set=paper loop.bandit.include_one_hot=false`` (experiments/read_paper.yaml).
    """

    beta: float = 0.5
    cost_lambda: float = 1e-5
    top_k: int = 3
    weight_grid: tuple[float, ...] = (0.25, 0.5, 0.75)
    include_one_hot: bool = True
    max_candidates: int = 50
    kappa: float = 1.0
    action_set: Literal["sparse", "paper"] = "sparse"
    local_step: float = 0.1
    warmup: int | None = None
    # switches for the ablations (each True is the method): a ReAD policy's κ shrinks when a dev checkpoint
    # stalls (False: its kappa_decay is 1); the proxy reward is rescaled by the dev checkpoints (False:
    # scale 1); ρ, the previous allocation and profile change, is in the context (False: zeroed)
    shrink_kappa: bool = True
    calibrate: bool = True
    context_rho: bool = True

    def __post_init__(self) -> None:
        if self.action_set not in ("sparse", "paper"):
            raise ReadJaxError(f"loop.bandit.action_set must be 'sparse' or 'paper', got {self.action_set!r}")
        if not 0 < self.local_step <= 1:
            raise ReadJaxError(f"loop.bandit.local_step must be in (0, 1], got {self.local_step}")
        if self.warmup is not None and self.warmup < 0:
            raise ReadJaxError(f"loop.bandit.warmup must be >= 0, got {self.warmup}")


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    task: str = "word_problem"
    policy: str = "read_ucb"
    budget_tokens: int = 60_000
    accounting: Literal["artifact", "paper"] = "artifact"
    intervals: int = 20
    seed: int = 0
    probes_per_capability: int = 32
    dev_every: float = 0.1
    # prompts (chat template included) longer than this are redrawn, probes longer are left out; 0: no
    # limit.  A long-context prompt costs prefill time and memory quadratic in its length on small machines.
    max_prompt_tokens: int = 0
    generation: GenerationConfig = GenerationConfig()
    train: TrainConfig = TrainConfig()
    bandit: BanditConfig = BanditConfig()

    def __post_init__(self) -> None:
        if self.budget_tokens < 1:
            raise ReadJaxError(f"loop.budget_tokens must be >= 1, got {self.budget_tokens}")
        if self.intervals < 1:
            raise ReadJaxError(f"loop.intervals must be >= 1, got {self.intervals}")
        if self.max_prompt_tokens < 0:
            raise ReadJaxError(f"loop.max_prompt_tokens must be >= 0, got {self.max_prompt_tokens}")
        if not 0 < self.dev_every <= 1:
            raise ReadJaxError(f"loop.dev_every must be in (0, 1], got {self.dev_every}")
        if self.accounting not in ("artifact", "paper"):
            raise ReadJaxError(f"loop.accounting must be 'artifact' or 'paper', got {self.accounting!r}")
        if self.train.loss.needs_topk and self.generation.topk_logprobs < 1:
            raise ReadJaxError("loop.train.loss.topk_kl trains on the teacher's top-k log-probs captured at generation; "
                               "set loop.generation.topk_logprobs (e.g. 20)")
