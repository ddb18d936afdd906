"""`read-jax`: unknown commands fail cleanly; long jobs restart once under the retained-malloc setting."""

import subprocess
import sys

import pytest

from read_jax import cli
from read_jax.distill import cpu


def test_unknown_command_is_a_one_line_error():
    r = subprocess.run([sys.executable, "-m", "read_jax.cli", "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == "read-jax: error: unknown command 'frobnicate'"


def _clear_malloc_env(monkeypatch):
    for k in cpu.RETAIN_MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv("READ_JAX_MALLOC", raising=False)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")


def _record_execve(monkeypatch) -> list:
    calls = []

    def fake_execve(path, args, env):
        calls.append((args, env))
        raise SystemExit(0)  # execve never returns

    monkeypatch.setattr(cpu.os, "execve", fake_execve)
    return calls


@pytest.mark.parametrize("how", ["flag", "env"])
def test_opt_in_restarts_long_jobs_under_retained_malloc(monkeypatch, how):
    _clear_malloc_env(monkeypatch)
    calls = _record_execve(monkeypatch)
    argv = ["run", "does-not-exist.yaml"]
    if how == "flag":
        argv.append("--cpu-malloc")
    else:
        monkeypatch.setenv("READ_JAX_MALLOC", "retain")
    with pytest.raises(SystemExit):
        cli.main(argv)
    (args, env), = calls
    assert args[1:] == ["-m", "read_jax.cli", "run", "does-not-exist.yaml"]  # the flag is not passed on
    assert cpu.malloc_retains_memory(env)


def test_no_restart_by_default_when_set_or_on_an_accelerator(monkeypatch, capsys):
    monkeypatch.setattr(cpu.os, "execve", lambda *a: pytest.fail("restarted"))
    _clear_malloc_env(monkeypatch)
    assert cli.main(["run", "does-not-exist.yaml"]) == 2  # not opted in
    for k, v in cpu.RETAIN_MALLOC_ENV.items():
        monkeypatch.setenv(k, v)
    assert cli.main(["run", "does-not-exist.yaml", "--cpu-malloc"]) == 2  # already restarted
    _clear_malloc_env(monkeypatch)
    monkeypatch.setenv("JAX_PLATFORMS", "tpu")
    assert cli.main(["run", "does-not-exist.yaml", "--cpu-malloc"]) == 2  # TPU: never
    assert "does-not-exist.yaml" in capsys.readouterr().err
