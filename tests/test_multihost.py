"""Multi-process runs: two processes on one global mesh decide and train exactly like one process.

The real thing, not a simulation: `read-jax run` is started as two OS processes joined by
`jax.distributed` over localhost (gloo CPU collectives), each with 4 fake CPU devices, on the
global (data 2, fsdp 2, tp 2) mesh of all 8; and once as one process with 8 devices on the same
mesh.  `tests/multihost_worker.py` records what each process saw (the prompts it drew, the
allocations, the budget ledger, the sampler and bandit states, the student's final parameters)
and which files it wrote.  Marked slow (``pytest -m slow tests/test_multihost.py``): the three
processes compile every program of a run, ~160 CPU-seconds.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from read_jax import distributed, run_files
from read_jax.errors import ReadJaxError

HERE = Path(__file__).parent
ROOT = HERE.parent
POLICIES = ("read_ucb",)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _save_tiny_models(root: Path) -> tuple[Path, Path]:
    """A random tiny teacher and student on the world's tokenizer, as HF directories."""
    from read_jax.models import DecoderConfig, init_decoder, save_hf
    from read_jax.worlds import World, WorldConfig

    tok = World(0, WorldConfig.preset("tiny")).tokenizer()

    def config(d, layers):
        return DecoderConfig(vocab_size=len(tok), hidden_size=d, intermediate_size=2 * d, num_hidden_layers=layers,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=d // 4, tie_word_embeddings=True,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)

    return (save_hf(init_decoder(config(64, 2), 0), root / "teacher"),
            save_hf(init_decoder(config(32, 1), 1), root / "student"))


def _write_config(root: Path) -> Path:
    teacher, student = _save_tiny_models(root)
    config = {
        # sampled answers (temperature > 0) from random models rarely end with eos: keep them, so the
        # student trains on every one (~1200 tokens, a few steps per interval)
        "loop": {"task": "dev_assistant", "budget_tokens": 2000, "intervals": 2, "probes_per_capability": 2,
                 "dev_every": 1.0, "train": {"rows": 8, "optimizer": {"warmup_steps": 1}},
                 "generation": {"max_new_tokens": 8, "prompts_per_call": 16, "temperature": 0.7,
                                "keep_unfinished": True}},
        "policies": list(POLICIES), "requirement": "uniform", "eval_split": "dev",
        "teacher": str(teacher), "student": str(student), "mesh": [2, 2, 2],
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _env(devices: int, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COORDINATOR", "JAX_NUM_PROC", "JAX_PROCESS"))}
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               READ_JAX_CACHE=str(cache), READ_JAX_DISTRIBUTED="0", TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def _worker(obs: Path, args: list[str], devices: int, cache: Path) -> subprocess.Popen:
    obs.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, str(HERE / "multihost_worker.py"), str(obs), "--", *args],
                            env=_env(devices, cache), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


# The coordinator's gRPC server can abort the process while it is torn down at exit (jax's atexit
# `jax.distributed.shutdown`), after every result is written: a race inside gRPC's sync server
# (`RealRequestMatcher` destroyed with a call still requested), seen once in CI (2026-12-04) and
# not reproduced in 40 local runs, idle or under load.  Only that abort (its stack names the
# coordinator's service, which only process 0 runs) is let through; every result the processes
# wrote is still checked by the tests.
_TEARDOWN_ABORT = ("Check failed: queue.Pop() == nullptr", "DistributedRuntimeService::Shutdown()")


def _exited_cleanly(returncode: int, text: str) -> bool:
    return returncode == 0 or (returncode == -6 and all(s in text for s in _TEARDOWN_ABORT))


def _finish(procs: list[subprocess.Popen], timeout: float = 600) -> None:
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, text in zip(procs, outputs):
        assert _exited_cleanly(p.returncode, text), f"worker exited {p.returncode}:\n{text[-6000:]}"


def test_only_the_coordinators_teardown_abort_is_let_through():
    abort = "F1204 server.cc:584] Check failed: queue.Pop() == nullptr\n  @ xla::DistributedRuntimeService::Shutdown()"
    assert _exited_cleanly(0, "") and _exited_cleanly(-6, abort)
    assert not _exited_cleanly(-6, "Check failed: something else")  # any other abort fails
    assert not _exited_cleanly(1, abort) and not _exited_cleanly(-9, abort)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny experiment as one process (8 devices) and as two processes (4 + 4 devices)."""
    root = tmp_path_factory.mktemp("multihost")
    config = _write_config(root)
    port = _free_port()
    two = [_worker(root / "obs2", [str(config), "--out", str(root / "two"), "--coordinator", f"127.0.0.1:{port}",
                                   "--num-processes", "2", "--process-id", str(i)], 4, root / "cache2")
           for i in range(2)]
    one = [_worker(root / "obs1", [str(config), "--out", str(root / "one")], 8, root / "cache1")]
    _finish(two + one)
    return root


def test_bandit_and_prompt_sampler_decide_alike_on_every_process(tmp_path):
    """Two joined processes (4 + 4 devices) run the bandit and the prompt sampler as the loop does,
    with rewards computed on the global mesh and gathered: every decision is the same on both; the
    state round-trips through an orbax checkpoint written by both processes together."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(HERE / "multihost_worker.py"), "--decisions",
                               str(tmp_path / f"p{i}.json"), f"127.0.0.1:{port}", "2", str(i)],
                              env=_env(4, tmp_path / "cache"), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    _finish(procs, timeout=300)
    p0, p1 = (json.loads((tmp_path / f"p{i}.json").read_text()) for i in range(2))
    assert p0["process_count"] == p1["process_count"] == 2
    assert len(p0["allocations"]) == 4 and all(len(p) == 6 for p in p0["prompts"])
    assert len({tuple(a) for a in p0["allocations"]}) > 1  # the bandit moved: not one constant answer
    assert p0 == p1
    # and the run's checkpointer saves and restores that state collectively
    assert p0["restored"] == {"data_equal": True, "data_sharding_kept": True, "policy_equal": True,
                              "key_equal": True, "meta": {"sampler": p0["sampler"]}}


def _obs(root: Path, name: str) -> dict:
    return json.loads((root / name).read_text())


@pytest.mark.slow  # three compiling processes: ~160 CPU-seconds, 3-4 minutes on a busy 2-core machine
def test_two_processes_decide_and_train_like_one(runs):
    one, p0, p1 = _obs(runs, "obs1/proc0.json"), _obs(runs, "obs2/proc0.json"), _obs(runs, "obs2/proc1.json")
    assert set(one) == set(p0) == set(p1) == set(POLICIES)
    for policy in POLICIES:
        a, b, c = one[policy], p0[policy], p1[policy]
        assert a["prompts"] and sum(map(len, a["prompts"])) > 0
        # every process drew the same prompts, chose the same allocations, spent the same budget
        for key in ("prompts", "allocations", "budget", "ledger", "tokens", "sampler"):
            assert b[key] == c[key], (policy, key, "differs between the two processes")
            assert a[key] == b[key], (policy, key, "differs between the one- and two-process runs")
        np.testing.assert_allclose(b["profile"], c["profile"], rtol=0, atol=0)
        np.testing.assert_allclose(a["profile"], b["profile"], rtol=1e-5, atol=1e-5)
        for x, y, z in zip(a["policy_state"], b["policy_state"], c["policy_state"]):
            np.testing.assert_array_equal(np.asarray(y), np.asarray(z))
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
        pa, pb, pc = (np.load(runs / d / f"proc{i}_{policy}.npz") for d, i in (("obs1", 0), ("obs2", 0), ("obs2", 1)))
        assert sorted(pa.files) == sorted(pb.files) == sorted(pc.files) and pa.files
        for name in pa.files:
            np.testing.assert_array_equal(pb[name], pc[name])  # one global array, gathered on both
            np.testing.assert_allclose(pa[name], pb[name], rtol=1e-4, atol=1e-5, err_msg=f"{policy} {name}")
    # the reports agree (process 0 wrote the two-process one)
    ra, rb = (json.loads((runs / d / "report.json").read_text()) for d in ("one", "two"))
    for name, p in ra["policies"].items():
        assert p["allocations"] == rb["policies"][name]["allocations"]
        assert p["tokens_used"] == rb["policies"][name]["tokens_used"]


@pytest.mark.slow
def test_only_process_zero_writes_run_files(runs):
    w0, w1 = _obs(runs, "obs2/writes0.json"), _obs(runs, "obs2/writes1.json")
    assert w1 == [], f"process 1 wrote run files: {w1[:10]}"
    written = {line.split(" ", 1)[1] for line in w0}
    for policy in POLICIES:
        assert f"runs/{policy}/history.jsonl" in written and f"runs/{policy}/run.json" in written
    assert {"experiment.json", "requirement.json", "report.json", "allocations.png"} <= written
    # and the orbax checkpoints were written collectively: both processes' shards, one checkpoint
    for policy in POLICIES:
        steps = sorted(p.name for p in (runs / "two" / "runs" / policy / "checkpoints").iterdir() if p.name.isdigit())
        assert steps == ["1", "2"], steps


# --------------------------------------------------------------------------- in-process unit tests
def test_run_files_write_nothing_off_the_primary_process(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "process_index", lambda: 1)
    assert not distributed.is_primary()
    target = tmp_path / "exp" / "runs"
    assert run_files.make_dir(target) == target and not target.exists()
    run_files.write_json(tmp_path / "a.json", {"x": 1})
    run_files.write_jsonl(tmp_path / "b.jsonl", [{"x": 1}])
    run_files.write_text(tmp_path / "c.txt", "x")
    run_files.write_bytes(tmp_path / "d.bin", b"x")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(distributed, "process_index", lambda: 0)
    run_files.write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}


def test_distributed_settings_from_flags_and_environment():
    assert distributed.settings(environ={}) is None  # the ordinary one-process run
    assert distributed.settings("h:1", 2, 1, environ={}) == {"coordinator_address": "h:1", "num_processes": 2,
                                                              "process_id": 1}
    env = {"JAX_COORDINATOR_ADDRESS": "h:2", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    assert distributed.settings(environ=env) == {"coordinator_address": "h:2", "num_processes": 4, "process_id": 3}
    assert distributed.settings(process_id=0, environ=env)["process_id"] == 0  # flags win
    assert distributed.settings(environ={"READ_JAX_DISTRIBUTED": "1"}) == {}  # JAX detects the cluster
    with pytest.raises(ReadJaxError, match="missing --num-processes, --process-id"):
        distributed.settings("h:1", environ={})
    with pytest.raises(ReadJaxError, match=r"--process-id must be in \[0, 2\)"):
        distributed.settings("h:1", 2, 2, environ={})
    with pytest.raises(ReadJaxError, match="JAX_NUM_PROCESSES: expected an integer"):
        distributed.settings(environ={"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two"})
    # without a request, initialize is a no-op (and idempotent)
    assert distributed.initialize(environ={}) is False
    assert distributed.process_count() == 1 and distributed.is_primary()


def test_a_mesh_that_is_not_the_device_count_is_one_line(eight_devices):
    from read_jax.sharding import configured_mesh

    assert configured_mesh(()) is None
    assert configured_mesh((2, 2, 2)).devices.size == 8
    assert configured_mesh((-1, 1, 2)).shape == {"data": 4, "fsdp": 1, "tp": 2}
    with pytest.raises(ReadJaxError, match=r"^mesh: mesh shape \(2, 2, 1\) needs 4 devices, have 8$"):
        configured_mesh((2, 2, 1))


def test_an_experiment_saved_before_the_mesh_field_still_matches_its_config():
    from read_jax.config import to_dict
    from read_jax.experiment import ExperimentConfig, _with_defaults

    config = ExperimentConfig(policies=("uniform",))
    saved = json.loads(json.dumps(to_dict(config)))
    del saved["mesh"]  # experiment.json as written before `mesh` existed
    assert _with_defaults(saved) == json.loads(json.dumps(to_dict(config)))
    assert _with_defaults({**saved, "policies": ["read_ucb"]}) != json.loads(json.dumps(to_dict(config)))


def test_to_host_is_device_get_for_addressable_arrays(eight_devices):
    import jax
    import jax.numpy as jnp

    from read_jax.sharding import batch_sharding, make_mesh

    x = jax.device_put(np.arange(16.0).reshape(8, 2), batch_sharding(make_mesh((2, 2, 2)), 2))
    out = distributed.to_host({"x": x, "y": jnp.ones(3), "z": 1})
    np.testing.assert_array_equal(out["x"], np.arange(16.0).reshape(8, 2))
    assert isinstance(out["y"], np.ndarray) and out["z"] == 1
