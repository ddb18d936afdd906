"""Benchmark: one bandit decision round, our jitted BLR vs the paper's ensemble as the artifact runs it.

One round = select over the candidate actions + update with the observed reward, after a history
of logged rounds (default 100 rounds, 50 candidates, 8 capabilities).

* ``blr``: `make_policy("read_ucb")`: exact NIG posterior, one Cholesky per decision, jitted.
* ``ensemble`` (the reference): the paper's reward model written the way the PyTorch artifact
  runs it: J = 5 ``nn.Sequential`` MLPs (64-64 ReLU), each retrained after every round for 200
  Adam steps (lr 1e-3) of minibatch 64 on its bootstrap resample, UCB mu + kappa sigma over the
  members.  Written here in PyTorch so the comparison is against the design as shipped.
* ``jax_ensemble`` (extra): our vmapped / jitted JAX port of that ensemble, for reference.

Steady-state times exclude compilation (reported separately as the first call); repeats give
min / median / max.  The benchmark also runs both reward models on the synthetic capability world
(`read_jax.bandit.simulator`, same worlds for both) and reports the final utility of each.

    read-jax bench bandit [--json] [--rounds 100] [--candidates 50] [--repeats 30] [--sim-seeds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any

import numpy as np

N_CAPS = 8


def _stats(times: list[float]) -> dict[str, float]:
    return {"min": min(times), "median": statistics.median(times), "max": max(times), "repeats": len(times)}


def _history(rounds: int, n_caps: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logged rounds: contexts in the standard layout, allocations, rewards (same for every model)."""
    rng = np.random.default_rng(seed)
    r = rng.dirichlet(np.ones(n_caps) * 0.5)
    ctx = np.concatenate(
        [
            np.broadcast_to(r, (rounds, n_caps)),
            rng.uniform(0.2, 0.6, (rounds, n_caps)),
            np.linspace(1.0, 0.0, rounds)[:, None],
            rng.dirichlet(np.ones(n_caps), rounds),
            0.01 * rng.normal(size=(rounds, n_caps)),
        ],
        axis=1,
    ).astype(np.float32)
    w = rng.dirichlet(np.ones(n_caps), rounds).astype(np.float32)
    y = (0.02 * (w * r).sum(1) + 0.002 * rng.normal(size=rounds) - 0.01).astype(np.float32)
    return ctx, w, y


def _candidates(n_candidates: int, n_caps: int, r: np.ndarray) -> np.ndarray:
    from read_jax.bandit import build_candidate_actions

    acts = build_candidate_actions([str(i) for i in range(n_caps)], r, 2, (0.25, 0.5, 0.75), n_caps, n_candidates, True)
    acts = np.asarray(acts, np.float32)
    if acts.shape[0] < n_candidates:  # top up with random mixtures so the count is what was asked
        extra = np.random.default_rng(0).dirichlet(np.ones(n_caps), n_candidates - acts.shape[0]).astype(np.float32)
        acts = np.vstack([acts, extra])
    return acts


# ----------------------------------------------------------------------------- our BLR (JAX)
def _time_policy_rounds(policy, rounds: int, n_candidates: int, repeats: int) -> dict[str, Any]:
    """Replay ``rounds`` of synthetic history into ``policy``, then time full rounds (select + update).

    The history updates compile `update`; the first full round compiles `select` and is
    reported apart from the timed repeats.
    """
    import jax
    import jax.numpy as jnp

    ctx, w, y = _history(rounds + repeats + 2, N_CAPS, seed=0)
    actions = jnp.asarray(_candidates(n_candidates, N_CAPS, ctx[0, :N_CAPS]))
    key = jax.random.PRNGKey(0)
    state = policy.init(key)
    for t in range(rounds):
        state = policy.update(state, jnp.asarray(ctx[t]), jnp.asarray(w[t]), jnp.asarray(y[t]))
    jax.block_until_ready(state)

    def one_round(state, t):
        # host context and reward, as the ReAD loop passes them: the policy's input checks
        # (bandit/guards.py) read them without a device sync
        x = np.asarray(ctx[rounds + t], np.float32)
        alloc, state = policy.select(state, x, actions, jax.random.fold_in(key, t))
        state = policy.update(state, x, alloc, float(y[rounds + t]))
        return jax.block_until_ready(state)

    t0 = time.perf_counter()
    state = one_round(state, 0)
    first = time.perf_counter() - t0
    times = []
    for t in range(1, repeats + 1):
        t0 = time.perf_counter()
        state = one_round(state, t)
        times.append(time.perf_counter() - t0)
    return {"first_call_seconds": first, **_stats(times)}


def bench_blr(rounds: int, n_candidates: int, repeats: int, kappa: float = 1.0) -> dict[str, Any]:
    from read_jax.bandit import make_policy

    policy = make_policy("read_ucb", n_caps=N_CAPS, kappa=kappa)
    return {**_time_policy_rounds(policy, rounds, n_candidates, repeats), "feature_dim": policy.features.dim}


# ------------------------------------------------------------------ our JAX port of the ensemble
def bench_jax_ensemble(rounds: int, n_candidates: int, repeats: int, kappa: float = 1.0) -> dict[str, Any]:
    """The bootstrap ensemble in JAX: each select fits 5 members x 200 steps."""
    from read_jax.bandit import make_policy

    policy = make_policy("read_ensemble", n_caps=N_CAPS, kappa=kappa, warmup=0)
    return _time_policy_rounds(policy, rounds, n_candidates, repeats)


# --------------------------------------------------------- the artifact's ensemble, in PyTorch
class TorchEnsemble:
    """The paper's reward model as the PyTorch artifact runs it (reference for the benchmark)."""

    def __init__(self, input_dim: int, n_members: int = 5, hidden: int = 64, lr: float = 1e-3,
                 steps: int = 200, batch: int = 64, kappa: float = 1.0, seed: int = 0) -> None:
        import torch
        from torch import nn

        self.torch = torch
        torch.manual_seed(seed)
        self.members = [
            nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                          nn.Linear(hidden, 1))
            for _ in range(n_members)
        ]
        self.lr, self.steps, self.batch, self.kappa = lr, steps, batch, kappa
        self.inputs: list[Any] = []
        self.targets: list[float] = []
        self.gen = torch.Generator().manual_seed(seed)

    def add(self, context: np.ndarray, allocation: np.ndarray, reward: float) -> None:
        self.inputs.append(self.torch.from_numpy(np.concatenate([context, allocation]).astype(np.float32)))
        self.targets.append(float(reward))

    def fit(self) -> None:
        torch = self.torch
        x = torch.stack(self.inputs)
        y = torch.tensor(self.targets, dtype=torch.float32)
        mean, std = y.mean(), y.std(unbiased=False) + 1e-8
        y = (y - mean) / std
        n = len(self.targets)
        for member in self.members:
            boot = torch.randint(0, n, (n,), generator=self.gen)  # the member's bootstrap resample
            opt = torch.optim.Adam(member.parameters(), lr=self.lr)
            for _ in range(self.steps):
                idx = boot[torch.randint(0, n, (self.batch,), generator=self.gen)]
                loss = torch.mean((member(x[idx]).squeeze(-1) - y[idx]) ** 2)
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.mean, self.std = mean, std

    def select(self, context: np.ndarray, actions: np.ndarray) -> int:
        torch = self.torch
        with torch.no_grad():
            ctx = torch.from_numpy(np.broadcast_to(context, (actions.shape[0], context.shape[0])).copy())
            inputs = torch.cat([ctx, torch.from_numpy(actions)], dim=1)
            preds = torch.stack([m(inputs).squeeze(-1) for m in self.members]) * self.std + self.mean
            return int(torch.argmax(preds.mean(0) + self.kappa * preds.std(0)))


def bench_torch_ensemble(rounds: int, n_candidates: int, repeats: int, kappa: float = 1.0,
                         threads: int = 1) -> dict[str, Any]:
    import torch

    # 64-unit MLPs on 64-row batches are fastest on one thread; more threads only add OpenMP
    # synchronisation (on our shared 2-core machine 2 threads made a fit 4-15x slower).
    torch.set_num_threads(threads)
    ctx, w, y = _history(rounds + repeats + 2, N_CAPS, seed=0)
    actions = _candidates(n_candidates, N_CAPS, ctx[0, :N_CAPS])
    model = TorchEnsemble(ctx.shape[1] + N_CAPS, kappa=kappa)
    for t in range(rounds):
        model.add(ctx[t], w[t], y[t])
    model.fit()

    def one_round(t: int) -> None:
        x = ctx[rounds + t]
        idx = model.select(x, actions)
        model.add(x, actions[idx], y[rounds + t])
        model.fit()  # the artifact retrains every member after each round

    t0 = time.perf_counter()
    one_round(0)
    first = time.perf_counter() - t0
    times = []
    for t in range(1, repeats + 1):
        t0 = time.perf_counter()
        one_round(t)
        times.append(time.perf_counter() - t0)
    return {"first_call_seconds": first, "torch_threads": threads, **_stats(times)}


# ------------------------------------------------------------------------- simulated utility
def simulated_utility(n_seeds: int, n_steps: int) -> dict[str, Any]:
    import jax

    from read_jax.bandit import make_policy
    from read_jax.bandit.simulator import SimConfig, run_seeds

    cfg = SimConfig(n_caps=N_CAPS, n_steps=n_steps, checkpoint_every=max(1, n_steps // 10))
    key = jax.random.PRNGKey(0)
    out: dict[str, Any] = {"n_seeds": n_seeds, "n_steps": n_steps}
    finals = {}
    for name in ("read_ucb", "read_ensemble"):
        t0 = time.perf_counter()
        res = run_seeds(make_policy(name, n_caps=N_CAPS), key, n_seeds, cfg)
        final = np.asarray(res.utility[:, -1], np.float64)
        gain = final - np.asarray(res.utility0, np.float64)
        finals[name] = final
        out[name] = {
            "final_utility_mean": float(final.mean()),
            "gain_mean": float(gain.mean()),
            "gain_stderr": float(gain.std(ddof=1) / np.sqrt(n_seeds)) if n_seeds > 1 else 0.0,
            "cumulative_regret_mean": float(np.asarray(res.regret[:, -1]).mean()),
            "wall_seconds_incl_compile": time.perf_counter() - t0,
        }
    diff = finals["read_ucb"] - finals["read_ensemble"]
    out["paired_diff_ucb_minus_ensemble"] = {
        "mean": float(diff.mean()),
        "stderr": float(diff.std(ddof=1) / np.sqrt(n_seeds)) if n_seeds > 1 else 0.0,
    }
    return out


def machine_info() -> dict[str, Any]:
    import jax
    import jaxlib

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dev dependency
        info["torch"] = None
    if hasattr(os, "getloadavg"):
        info["load_average_1m_at_start"] = os.getloadavg()[0]
    return info


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="read-jax bench bandit", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rounds", type=int, default=100, help="logged rounds before the timed round")
    parser.add_argument("--candidates", type=int, default=50, help="candidate actions per decision")
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds for BLR")
    parser.add_argument("--ensemble-repeats", type=int, default=5, help="timed rounds for the ensembles")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads for the reference")
    parser.add_argument("--sim-seeds", type=int, default=8, help="seeds for the simulated utility (0: skip)")
    parser.add_argument("--sim-steps", type=int, default=20, help="decisions per simulated run")
    args = parser.parse_args(argv)

    info = machine_info()
    blr = bench_blr(args.rounds, args.candidates, args.repeats)
    torch_ens = bench_torch_ensemble(args.rounds, args.candidates, args.ensemble_repeats, threads=args.torch_threads)
    jax_ens = bench_jax_ensemble(args.rounds, args.candidates, args.ensemble_repeats)
    sim = simulated_utility(args.sim_seeds, args.sim_steps) if args.sim_seeds > 0 else None
    result: dict[str, Any] = {
        "benchmark": "bandit select+update round",
        "config": {
            "n_caps": N_CAPS, "logged_rounds": args.rounds, "candidates": args.candidates,
            "blr_feature_dim": blr["feature_dim"], "ensemble": "5 MLPs 64-64, 200 Adam steps batch 64 per round",
        },
        "blr_seconds": blr["median"],
        "blr": blr,
        "ensemble_seconds": torch_ens["median"],
        "ensemble_torch": torch_ens,
        "jax_ensemble_seconds": jax_ens["median"],
        "jax_ensemble": jax_ens,
        "ratio": torch_ens["median"] / blr["median"],
        "ratio_jax_ensemble": jax_ens["median"] / blr["median"],
        "machine": info,
    }
    if sim is not None:
        result["blr_ucb_utility"] = sim["read_ucb"]["final_utility_mean"]
        result["ensemble_utility"] = sim["read_ensemble"]["final_utility_mean"]
        result["simulation"] = sim
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    ms = lambda s: f"{1e3 * s:10.3f}"  # noqa: E731
    print(f"bandit select+update round: {args.rounds} logged rounds, {args.candidates} candidates, |C| = {N_CAPS}")
    print(f"machine: {info['processor']}, {info['cpu_count']} cores, jax {info['jax']} ({info['jax_backend']}), "
          f"torch {info.get('torch')} ({torch_ens['torch_threads']} thread(s)), "
          f"load average {info.get('load_average_1m_at_start', 'n/a')}")
    print(f"{'model':32s} {'min ms':>10s} {'median ms':>10s} {'max ms':>10s} {'first call ms':>14s}")
    for name, row in (("BLR-UCB (jax, ours)", blr), ("ensemble (torch, artifact design)", torch_ens),
                      ("ensemble (jax port)", jax_ens)):
        print(f"{name:32s} {ms(row['min'])} {ms(row['median'])} {ms(row['max'])} {ms(row['first_call_seconds']):>14s}")
    print(f"ratio ensemble(torch) / BLR (median): {result['ratio']:.1f}x;  jax ensemble / BLR: "
          f"{result['ratio_jax_ensemble']:.1f}x")
    if sim is not None:
        for name in ("read_ucb", "read_ensemble"):
            row = sim[name]
            print(f"simulated final utility {name:14s}: {row['final_utility_mean']:.4f} "
                  f"(gain {row['gain_mean']:.4f} +- {row['gain_stderr']:.4f}, {sim['n_seeds']} seeds)")
        d = sim["paired_diff_ucb_minus_ensemble"]
        print(f"paired difference BLR-UCB - ensemble: {d['mean']:.4f} +- {d['stderr']:.4f}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
