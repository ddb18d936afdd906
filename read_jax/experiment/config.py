"""The experiment's config, `ExperimentConfig`, checked when it is parsed (before any model is loaded),
and the names of its requirement modes and search baselines."""

from __future__ import annotations

import dataclasses
from typing import Any

from read_jax.errors import ReadJaxError
from read_jax.loop import LoopConfig
from read_jax.sources import SOURCES
from read_jax.sources.config import RealSourceConfig

REQUIREMENT_MODES = ("identifier", "interventions", "card", "true", "uniform")
# baselines an experiment resolves by a search on the profiling split, then runs as a fixed allocation
SEARCH_POLICIES = {"grid": "the action set A(τ) for the best fixed allocation",
                   "one_hot_best": "every one-hot allocation for the best capability"}

# The paper's one-hot baselines, teacher signal x objective: `one_hot.<signal>_<objective>` runs the
# one-hot policy (the whole budget on the estimated top capability) with that supervision.  The paper
# names the six cells without defining them further; this is read_jax's reading (docs/deviations.md).
LOGIT_TOP_K = 20
# the CoT cells: the teacher asked for "<rationale>; <answer>" (the longest in the world is 40 characters, + eos),
# and the student, trained so, answers so too when its task is scored
RATIONALE_TOKENS = {"rationale": True, "max_new_tokens": 64, "eval_max_new_tokens": 64}


@dataclasses.dataclass(frozen=True)
class OneHotVariant:
    """One cell of the paper's grid: what it trains on, and the loop settings that make it so."""

    description: str
    generation: dict[str, Any] = dataclasses.field(default_factory=dict)  # GenerationConfig fields to set
    loss: dict[str, Any] = dataclasses.field(default_factory=dict)        # LossConfig fields to set


ONE_HOT_VARIANTS = {
    "resp_sft": OneHotVariant("cross-entropy on the teacher's sampled answer (the same run as `one_hot`)"),
    "resp_kd": OneHotVariant("forward KL to the teacher's full next-token distribution at every answer token",
                             loss={"ce": 0.0, "kl": 1.0}),
    "logit_sft": OneHotVariant("cross-entropy on the teacher's greedy answer (the arg-max of its logits)",
                               generation={"temperature": 0.0}),
    "logit_kd": OneHotVariant(f"sparse KL to the teacher's top-{LOGIT_TOP_K} log-probs captured at generation",
                              generation={"topk_logprobs": LOGIT_TOP_K}, loss={"ce": 0.0, "topk_kl": 1.0}),
    "cot_sft": OneHotVariant("cross-entropy on the teacher's sampled rationale and answer, asked for with the "
                             "source's rationale request; the student sees the plain prompt",
                             generation=RATIONALE_TOKENS),
    "cot_kd": OneHotVariant(f"sparse KL to the teacher's top-{LOGIT_TOP_K} log-probs at every token of its "
                            "rationale and answer (captured at generation, where the teacher saw the rationale "
                            "request the student's prompt lacks)",
                            generation={**RATIONALE_TOKENS, "topk_logprobs": LOGIT_TOP_K},
                            loss={"ce": 0.0, "topk_kl": 1.0}),
}


def one_hot_variant(spec: str) -> OneHotVariant | None:
    """The variant named by a policy spec ``one_hot.<variant>`` (None for any other spec); unknown or
    unavailable variants fail with one line naming them."""
    if not spec.startswith("one_hot."):
        return None
    name = spec.split(".", 1)[1]
    choices = ", ".join("one_hot." + v for v in ONE_HOT_VARIANTS)
    if name not in ONE_HOT_VARIANTS:
        raise ReadJaxError(f"policies: unknown one-hot variant {spec!r}; choose one of {choices}")
    return ONE_HOT_VARIANTS[name]


def with_one_hot_variant(loop: LoopConfig, variant: OneHotVariant) -> LoopConfig:
    """``loop`` running the one-hot policy with ``variant``'s teacher signal and objective."""
    train = dataclasses.replace(loop.train, loss=dataclasses.replace(loop.train.loss, **variant.loss))
    return dataclasses.replace(loop, policy="one_hot", generation=dataclasses.replace(loop.generation,
                                                                                      **variant.generation), train=train)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    loop: LoopConfig = LoopConfig()
    policies: tuple[str, ...] = ("read_ucb", "uniform", "one_hot")
    source: str = "world"             # where data comes from: "world" (embedded) or "real" (see read_jax.sources)
    world_seed: int = 0               # source=world: the world's seed and `WorldConfig.preset` name; recipe
    world_preset: str = "tiny"        # models must be trained on the same world
    # models: source=world: "recipe:NAME" or an HF directory; source=real: a model spec (`read_jax.models.resolve`)
    teacher: str = "recipe:teacher_cot"
    student: str = "recipe:student"
    real: RealSourceConfig = RealSourceConfig()
    # device mesh [data, fsdp, tp] over all devices of all processes the models are loaded onto and run
    # on (one entry may be -1: the devices left); empty: one device, or with several processes all of
    # them data-parallel.  Both sources; ``real.mesh`` is the older spelling for source=real.
    mesh: tuple[int, ...] = ()
    # r_τ: "identifier" (the paper's g_φ on auxiliary tasks), "interventions" (pilots on the target), "card",
    # "true" (the world's), "uniform"
    requirement: str = "identifier"
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
            if spec not in SEARCH_POLICIES and one_hot_variant(spec) is None:
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
