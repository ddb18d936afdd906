"""Policies by name: the table behind `make_policy`, and the parsing of a config's policy spec
(``NAME`` or ``best_fixed:W1,...,WC``) into a name and options."""

from __future__ import annotations

import math
from typing import Any

import jax

from read_jax.bandit.features import ContextLayout
from read_jax.bandit.policies.base import Policy
from read_jax.bandit.policies.baselines import (BestFixedPolicy, OneHotPolicy, RandomPolicy, TaskStaticPolicy,
                                                UniformPolicy)
from read_jax.bandit.policies.mixing import DoremiPolicy, OdmPolicy
from read_jax.bandit.policies.read import _READ_PRESETS
from read_jax.errors import ReadJaxError

POLICIES: dict[str, Any] = {
    **_READ_PRESETS,  # read_ucb, read_thompson, read_ensemble, read_paper, greedy, greedy_ensemble
    "uniform": UniformPolicy,
    "task_static": TaskStaticPolicy,
    "one_hot": OneHotPolicy,
    "best_fixed": BestFixedPolicy,
    "random": RandomPolicy,
    "odm": OdmPolicy,
    "doremi": DoremiPolicy,
}


# policies that take a fixed allocation in their spec: "best_fixed:0.5,0.5,0,0,0,0,0,0"
SPEC_ALLOCATION = ("best_fixed",)


def parse_policy_spec(spec: str, n_caps: int | None = None, where: str = "policy") -> tuple[str, dict[str, Any]]:
    """``NAME`` or ``NAME:W1,...,WC`` (a fixed allocation, one weight per capability in the source's
    order, for ``best_fixed``) -> (name, make_policy options).  Checks the name against `POLICIES` and
    the allocation against the simplex (and against ``n_caps`` when given); errors are one line
    naming ``where`` (the config field)."""
    name, sep, weights = str(spec).partition(":")
    name = name.strip()
    if name not in POLICIES:
        raise ReadJaxError(f"{where}: unknown policy {name!r}; choose one of {', '.join(sorted(POLICIES))}")
    if not sep:
        return name, {}
    if name not in SPEC_ALLOCATION:
        raise ReadJaxError(f"{where}: {spec!r}: only {', '.join(SPEC_ALLOCATION)} takes an allocation "
                           f"(NAME:W1,...,WC); write {name!r} alone")
    try:
        alloc = tuple(float(w) for w in weights.split(","))
    except ValueError:
        raise ReadJaxError(f"{where}: {spec!r}: the allocation must be comma-separated numbers, "
                           f"e.g. {name}:0.5,0.5,0,0") from None
    total = sum(alloc)
    if not all(math.isfinite(w) and w >= 0 for w in alloc) or abs(total - 1.0) > 1e-3:
        raise ReadJaxError(f"{where}: {spec!r}: the allocation is off the simplex (weights must be >= 0 and "
                           f"sum to 1, these sum to {total:g}); fix the weights")
    if n_caps is not None and len(alloc) != n_caps:
        raise ReadJaxError(f"{where}: {spec!r}: the allocation has {len(alloc)} weights for {n_caps} "
                           "capabilities; give one weight per capability")
    return name, {"allocation": alloc}


def make_policy(name: str, *, n_caps: int, context_dim: int | None = None, **kwargs: Any) -> Policy:
    """Build a policy by name (see `POLICIES`) or spec (`parse_policy_spec`: ``best_fixed:0.5,0.5,...``);
    ``context_dim`` defaults to the standard layout 4C+1.

    Raises `ReadJaxError` with one line for an unknown name or an option the policy does not take.
    """
    if ":" in str(name):
        name, spec_kwargs = parse_policy_spec(name, n_caps=n_caps)
        kwargs = {**spec_kwargs, **kwargs}
    if name not in POLICIES:
        raise ReadJaxError(f"unknown bandit policy {name!r}; choose one of {', '.join(sorted(POLICIES))}")
    if n_caps < 1:
        raise ReadJaxError(f"n_caps must be >= 1, got {n_caps}")
    context_dim = ContextLayout(n_caps).dim if context_dim is None else int(context_dim)
    if "curvature" in kwargs:
        kwargs["curvature"] = tuple(kwargs["curvature"])
    if isinstance(kwargs.get("allocation"), (list, jax.Array)) or hasattr(kwargs.get("allocation"), "tolist"):
        kwargs["allocation"] = tuple(float(v) for v in kwargs["allocation"])
    if isinstance(kwargs.get("reference"), list):
        kwargs["reference"] = tuple(float(v) for v in kwargs["reference"])
    try:
        return POLICIES[name](n_caps=n_caps, context_dim=context_dim, **kwargs)
    except TypeError as err:
        raise ReadJaxError(f"bad option for bandit policy {name!r}: {err}") from None
