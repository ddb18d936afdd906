"""Token budget: a hard limit under both accountings of method.md §1, never exceeded.

- ``"artifact"``: B = teacher generated tokens + student training tokens (prompt + label, never
  padding), split ``teacher_share`` / (1 − ``teacher_share``) (artifact: 40 % / 60 %).  Each
  pool is a hard limit: generation is charged to the teacher pool, training to the student pool,
  so their total can never pass B.
- ``"paper"``: B = teacher tokens the student trains on (the label tokens of trained examples).
  Generation is recorded but not charged.
- `pool` (the ReAD loop's last interval): from then on training may also spend what the
  teacher pool has not, so a run ends having spent B (equal spend across policies); the
  teacher pool stays a hard limit on generation, and B on the total.

Every ``charge_*`` either fits entirely and is applied, or raises `BudgetExceeded` and changes
nothing.  Callers ask first how much fits (`fit_count`, `max_label_tokens`,
`generation_allowance`) and truncate / drop examples accordingly.  ``state_dict()`` /
``from_state_dict()`` round-trip the whole state (plain ints / strings) for checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

from read_jax.errors import ReadJaxError

ACCOUNTINGS = ("artifact", "paper")
# the state fields that are not token counts (ints), as `from_state_dict` restores them from JSON
_STATE_TYPES = {"teacher_share": float, "accounting": str, "pooled": bool}


class BudgetExceeded(ReadJaxError):
    """A charge that does not fit in what is left of the budget (nothing was charged)."""


@dataclasses.dataclass
class TokenBudget:
    limit: int
    accounting: str = "artifact"
    teacher_share: float = 0.4
    teacher_used: int = 0          # charged generation tokens (artifact) — 0 under "paper"
    student_used: int = 0          # charged training tokens: prompt+label (artifact) / label (paper)
    generated_tokens: int = 0      # recorded under both accountings
    prompt_tokens: int = 0         # trained prompt tokens, recorded under both
    label_tokens: int = 0          # trained label tokens, recorded under both
    pooled: bool = False           # training may spend the teacher pool's remainder (`pool`)

    def __post_init__(self) -> None:
        if self.accounting not in ACCOUNTINGS:
            raise ReadJaxError(f"budget accounting must be one of {ACCOUNTINGS}, got {self.accounting!r}")
        if int(self.limit) != self.limit or self.limit < 0:
            raise ReadJaxError(f"budget limit must be a non-negative integer, got {self.limit}")
        if not (0.0 <= float(self.teacher_share) <= 1.0) or math.isnan(float(self.teacher_share)):
            raise ReadJaxError(f"teacher_share must be in [0, 1], got {self.teacher_share}")
        self.limit = int(self.limit)
        # plain Python types, so state_dict() is JSON as the docstring promises (a numpy float32
        # share or numpy str accounting would not serialise)
        self.teacher_share = float(self.teacher_share)
        self.accounting = str(self.accounting)
        self.pooled = bool(self.pooled)
        for name in ("teacher_used", "student_used", "generated_tokens", "prompt_tokens", "label_tokens"):
            if int(getattr(self, name)) < 0:
                raise ReadJaxError(f"budget {name} must be >= 0")
            setattr(self, name, int(getattr(self, name)))
        if self.teacher_used > self.teacher_limit or self.student_used > self.student_limit:
            raise ReadJaxError("budget state already exceeds its limit")

    # -- limits
    @property
    def teacher_limit(self) -> int:
        """Generation pool (artifact: floor(share · B)); 0 under "paper" (generation is not charged).

        Capped at B: past 2**53 the float product share · B can round up above B (share = 1,
        B = 2**54 - 1 gave B + 1, a negative student pool and an unusable fresh budget).
        """
        if self.accounting != "artifact":
            return 0
        return min(self.limit, int(math.floor(self.limit * float(self.teacher_share))))

    @property
    def student_limit(self) -> int:
        """Training pool: B minus the teacher pool, or once pooled B minus what the teacher has spent."""
        return self.limit - (self.teacher_used if self.pooled else self.teacher_limit)

    def pool(self) -> None:
        """Let training spend whatever the teacher pool leaves (for the end of a run: nothing of B is
        left unspent because one pool ran dry before the other)."""
        self.pooled = True

    @property
    def used(self) -> int:
        return self.teacher_used + self.student_used

    @property
    def remaining(self) -> int:
        return self.limit - self.used

    @property
    def progress(self) -> float:
        """Fraction of the budget spent (the curriculum's p)."""
        return self.used / self.limit if self.limit else 1.0

    @property
    def exhausted(self) -> bool:
        """No further training token can be charged."""
        return self.student_limit - self.student_used <= 0

    # -- questions
    def training_cost(self, prompt_tokens: int, label_tokens: int) -> int:
        _nonneg(prompt_tokens, label_tokens)
        return int(label_tokens) if self.accounting == "paper" else int(prompt_tokens) + int(label_tokens)

    def generation_allowance(self) -> int | None:
        """Teacher tokens that may still be generated (``None``: generation is not charged)."""
        if self.accounting == "paper":
            return None
        left = self.teacher_limit - self.teacher_used
        return min(left, self.remaining) if self.pooled else left

    def max_label_tokens(self, prompt_tokens: int) -> int:
        """Most label tokens one more example with this prompt can train on (0 if none)."""
        room = self.student_limit - self.student_used
        if self.accounting == "artifact":
            room -= int(prompt_tokens)
        return max(room, 0)

    def fit_count(self, examples: Iterable[tuple[int, int]]) -> int:
        """How many leading (prompt_tokens, label_tokens) examples fit, charged together."""
        room = self.student_limit - self.student_used
        n = 0
        for p, l in examples:
            cost = self.training_cost(p, l)
            if cost > room:
                break
            room -= cost
            n += 1
        return n

    # -- charges (all-or-nothing)
    def charge_generation(self, tokens: int) -> None:
        _nonneg(tokens)
        tokens = int(tokens)
        allowance = self.generation_allowance()
        if allowance is not None and tokens > allowance:
            raise BudgetExceeded(f"generation of {tokens} tokens exceeds the teacher budget: "
                                 f"{allowance} of {self.teacher_limit} left")
        if self.accounting == "artifact":
            self.teacher_used += tokens
        self.generated_tokens += tokens

    def charge_training(self, prompt_tokens: int, label_tokens: int) -> None:
        cost = self.training_cost(prompt_tokens, label_tokens)
        if self.student_used + cost > self.student_limit:
            raise BudgetExceeded(f"training on {int(prompt_tokens)} prompt + {int(label_tokens)} label tokens costs "
                                 f"{cost} under the {self.accounting!r} accounting; "
                                 f"{self.student_limit - self.student_used} of {self.student_limit} left")
        self.student_used += cost
        self.prompt_tokens += int(prompt_tokens)
        self.label_tokens += int(label_tokens)

    def charge_batch(self, batch: Any) -> None:
        """Charge a `read_jax.distill.batching.Batch` (its prompt and label tokens; padding is free)."""
        self.charge_training(batch.prompt_tokens, batch.label_tokens)

    # -- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> "TokenBudget":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(state) - known)
        if unknown:
            raise ReadJaxError(f"unknown token-budget state key(s) {unknown}")
        return cls(**{k: _STATE_TYPES.get(k, int)(v) for k, v in state.items()})


def _nonneg(*values: int) -> None:
    for v in values:
        if int(v) != v or v < 0:
            raise ReadJaxError(f"token counts must be non-negative integers, got {v}")
