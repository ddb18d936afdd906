"""One process of the multi-process test (`tests/test_multihost.py`): ``read-jax run`` plus observers.

Usage: ``python tests/multihost_worker.py OBS_DIR -- RUN_ARGS...`` where RUN_ARGS are the
arguments of ``read-jax run`` (``--coordinator/--num-processes/--process-id`` for one process of a
multi-process run).  The run itself is the real command (`read_jax.run.main`); this script only
watches it and records, per process, into OBS_DIR (files the run does not know about):

- ``proc{I}.json``: for every policy run, the prompts drawn in every interval (the text, in
  order), the allocations, the budget ledger, the sampler's state and the bandit's state, as this
  process saw them;
- ``proc{I}_{policy}.npz``: the student's final parameters, gathered to this process;
- ``writes{I}.json``: every file this process's Python code opened for writing, renamed or
  created as a directory under the run's ``--out`` outside its orbax ``checkpoints`` directories
  (a `sys.addaudithook` hook: what the run's own file writes are, whoever makes them).

``python tests/multihost_worker.py --decisions OUT.json COORDINATOR N I`` is the quick check: join
the processes, then run the bandit (select / update over a few rounds, rewards computed from a
sharded array on the global mesh and gathered with `to_host`) and the prompt sampler as the loop
does, save and restore the state with `RunCheckpointer` (in OUT.json's directory), and write what
this process decided and restored.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    obs = Path(sys.argv[1])
    obs.mkdir(parents=True, exist_ok=True)
    argv = sys.argv[sys.argv.index("--") + 1:]
    out = Path(argv[argv.index("--out") + 1]).resolve()
    pid = int(argv[argv.index("--process-id") + 1]) if "--process-id" in argv else 0
    writes: list[str] = []

    def under_out(path) -> str | None:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return None
        p = os.path.abspath(os.fsdecode(path))
        if not p.startswith(str(out)) or "checkpoints" in Path(p).relative_to(out).parts:
            return None
        return os.path.relpath(p, out)

    def audit(event: str, args) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing and (rel := under_out(path)):
                writes.append(f"open {rel}")
        elif event in ("os.rename", "os.replace", "os.mkdir"):
            target = args[1] if event != "os.mkdir" else args[0]
            if rel := under_out(target):
                writes.append(f"{event} {rel}")

    sys.addaudithook(audit)

    import numpy as np

    from read_jax import loop

    seen: dict[str, dict] = {}
    draw, run = loop.ReadRun._draw_prompts, loop.ReadRun.run

    def observed_draw(self, w, n, spent):
        prompts, ids = draw(self, w, n, spent)
        seen.setdefault(self.run_dir.name, {"prompts": []})["prompts"].append([p.prompt for p in prompts])
        return prompts, ids

    def observed_run(self):
        summary = run(self)
        from read_jax.distributed import to_host

        params = to_host(self.distiller.params)  # a collective: every process calls it here, in order
        flat = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)
                for path, v in __import__("jax").tree_util.tree_flatten_with_path(params)[0]}
        np.savez(obs / f"proc{pid}_{self.run_dir.name}.npz", **flat)
        policy_state = to_host(self.policy_state)
        rec = seen.setdefault(self.run_dir.name, {"prompts": []})
        rec.update(allocations=[h["allocation"] for h in self.history], budget=self.budget.state_dict(),
                   ledger=[h["budget"] for h in self.history], tokens=[h["tokens"] for h in self.history],
                   sampler=self.prompt_sampler.state_dict(), profile=self.profile.tolist(),
                   policy_state=[np.asarray(x).tolist() for x in __import__("jax").tree.leaves(policy_state)])
        return summary

    loop.ReadRun._draw_prompts = observed_draw
    loop.ReadRun.run = observed_run

    from read_jax.run import main as run_main

    code = run_main(argv)
    (obs / f"proc{pid}.json").write_text(json.dumps(seen))
    (obs / f"writes{pid}.json").write_text(json.dumps(writes))
    return code


def decisions() -> int:
    out, coordinator, n, i = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    from read_jax.distributed import initialize, process_count, to_host

    initialize(coordinator, n, i)
    import jax
    import jax.numpy as jnp
    import numpy as np

    from read_jax.bandit import build_candidate_actions, make_context, make_policy
    from read_jax.sharding import batch_sharding, make_mesh, place
    from read_jax.worlds import World, WorldConfig

    world = World(0, WorldConfig.preset("tiny"))
    caps = list(world.capabilities)
    r = np.full(len(caps), 1 / len(caps))
    sampler = world.prompt_sampler(seed=5)
    policy = make_policy("read_ucb", n_caps=len(caps), kappa=1.0)
    actions = jnp.asarray(build_candidate_actions(caps, r.tolist(), 2, [0.25, 0.5, 0.75], 3, 50, True), jnp.float32)
    key = jax.random.key(0)
    state = policy.init(jax.random.fold_in(key, 10_000))
    mesh = make_mesh((2, 2, 2))  # over every process's devices
    data = place(np.arange(64, dtype=np.float32).reshape(16, 4) / 64, batch_sharding(mesh, 2))
    s, w_prev, ds_prev = np.zeros(len(caps)), np.zeros(len(caps)), np.zeros(len(caps))
    record = {"process_count": process_count(), "allocations": [], "prompts": [], "rewards": []}
    for t in range(4):
        x = make_context(r, s, 1 - t / 4, w_prev, ds_prev)
        w, state = policy.select(state, x, actions, jax.random.fold_in(key, t))
        w = np.asarray(jax.device_get(w), np.float64)
        record["prompts"].append([sampler.draw(w, progress=t / 4).prompt for _ in range(6)])
        # a "probe" on the mesh: a global array reduced across processes, gathered everywhere
        scores = to_host(jax.jit(lambda d, w: d @ jnp.asarray(w[:4], jnp.float32))(data, w))
        ds = np.resize(scores[:len(caps)], len(caps)) * 1e-2
        reward = float(ds @ r)
        state = policy.update(state, x, jnp.asarray(w, jnp.float32), jnp.asarray(reward, jnp.float32),
                              delta_s=jnp.asarray(ds, jnp.float32))
        s, w_prev, ds_prev = s + ds, w, ds
        record["allocations"].append(w.tolist())
        record["rewards"].append(reward)
    record["sampler"] = sampler.state_dict()
    record["policy_state"] = [np.asarray(x).tolist() for x in jax.tree.leaves(jax.device_get(state))]

    # collective checkpoint: a global sharded array, the process-local bandit state and key, the meta
    from read_jax.checkpoint import RunCheckpointer

    ckpt = RunCheckpointer(Path(out).parent / "checkpoints", max_to_keep=1)
    trees = {"data": data, "policy": state, "key": jax.random.key_data(key)}
    ckpt.save(1, trees, {"sampler": sampler.state_dict()})
    ckpt.wait()
    restored, meta = ckpt.restore(trees)
    record["restored"] = {
        "data_equal": bool(np.array_equal(to_host(restored["data"]), to_host(data))),
        "data_sharding_kept": restored["data"].sharding == data.sharding,
        "policy_equal": all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
                            zip(jax.tree.leaves(restored["policy"]), jax.tree.leaves(jax.device_get(state)))),
        "key_equal": bool(np.array_equal(np.asarray(restored["key"]), np.asarray(jax.random.key_data(key)))),
        "meta": meta}
    ckpt.close()
    Path(out).write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(decisions() if sys.argv[1] == "--decisions" else main())
