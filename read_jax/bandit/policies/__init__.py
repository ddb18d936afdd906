"""Allocation policies behind one interface: ReAD (BLR-UCB / BLR-Thompson / ensemble) and baselines.

Modules, one idea each:
  base.py        the `Policy` interface (described there) and the input guards / jit helpers all share
  baselines.py   non-learning schedules: uniform, task-static, one-hot, random, best fixed allocation
  read.py        ReAD's contextual bandit (`ReadPolicy`) and its named presets (read_*, greedy*)
  mixing.py      the data-mixing baselines ODM (EXP3) and DoReMi (multiplicative weights)
  registry.py    `POLICIES` by name, `parse_policy_spec`, `make_policy`
"""

from read_jax.bandit.policies.base import Policy, StepState
from read_jax.bandit.policies.baselines import (
    BestFixedPolicy,
    FixedState,
    OneHotPolicy,
    RandomPolicy,
    TaskStaticPolicy,
    UniformPolicy,
)
from read_jax.bandit.policies.mixing import DoremiPolicy, DoremiState, OdmPolicy, OdmState
from read_jax.bandit.policies.read import ReadPolicy, ReadState
from read_jax.bandit.policies.registry import POLICIES, SPEC_ALLOCATION, make_policy, parse_policy_spec

__all__ = [
    "POLICIES",
    "SPEC_ALLOCATION",
    "BestFixedPolicy",
    "DoremiPolicy",
    "DoremiState",
    "FixedState",
    "OdmPolicy",
    "OdmState",
    "OneHotPolicy",
    "Policy",
    "RandomPolicy",
    "ReadPolicy",
    "ReadState",
    "StepState",
    "TaskStaticPolicy",
    "UniformPolicy",
    "make_policy",
    "parse_policy_spec",
]
