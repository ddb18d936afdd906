"""Bad input to `read-jax run`: every case exits 2 with one line naming the file or config field and
what to do, and leaves the run directory exactly as it was (tests/BAD_INPUT.md lists the cases).

Each case builds its input in ``tmp_path`` and runs the CLI entry (`read_jax.cli.main`) in this
process, or in a subprocess where it needs a resource limit (a full disk is a file-size limit:
``RLIMIT_FSIZE`` with ``SIGXFSZ`` ignored, so writes fail with ``EFBIG``).  `_assert_rejected` is
the one check: exit code 2; stderr is exactly one line ``read-jax run: error: ...`` naming what
the case names, besides the progress lines of the stages that ran before it (config cases must
fail when the config is parsed, so not even a stage starts; model, task and template cases in the
``[load_models]`` stage, before anything else; damage only reading the files finds, such as a
corrupt checkpoint, in the stage that reads them); and every watched directory holds the same
files with the same bytes as before (one that did not exist holds no file).

The inputs are small: tiny random decoders saved as HF directories on the synthetic world's
tokenizer, a tiny chat tokenizer for the real source, copies of the read8 pack, and one finished
tiny experiment (built once per module) that the resume cases copy and damage.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from read_jax import cli

REPO = Path(__file__).resolve().parents[1]
ERROR_PREFIX = "read-jax run: error: "
LOAD_STAGE = "[load_models] loading models, tokenizer and tasks ..."
STAGE_LINE = re.compile(r"^\[[a-z_]+\] (.* \.\.\.|done in [0-9.]+ s)$")
PACK_DIR = REPO / "read_jax" / "capabilities" / "packs" / "read8"

LOOP = {"task": "dev_assistant", "budget_tokens": 1500, "intervals": 2, "probes_per_capability": 2,
        "dev_every": 1.0, "generation": {"max_new_tokens": 8, "prompts_per_call": 16, "keep_unfinished": True},
        "train": {"rows": 8}}


# ----------------------------------------------------------------------------- the one check
def snapshot(root: Path) -> dict[str, bytes] | None:
    """relative path -> bytes of every file under ``root`` (directories as ``path/`` -> b""), or None."""
    if not root.exists() and not root.is_symlink():
        return None
    if not root.is_dir():
        return {".": root.read_bytes()}
    out: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel + "/" if p.is_dir() else rel] = b"" if p.is_dir() else p.read_bytes()
    return out


def _assert_rejected(rc: int, stderr: str, names: tuple[str, ...], before: dict[Path, dict | None],
                     stage: str) -> str:
    """``stage``: where the case must fail: "parse" (nothing printed but the error), "load" (the
    ``[load_models]`` stage may have announced itself, no later stage started) or "run" (any stage's
    progress lines, for damage that only reading the files finds)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if stage == "load" and lines[:1] == [LOAD_STAGE]:
        lines = lines[1:]
    elif stage == "run":
        lines = [line for line in lines if not STAGE_LINE.match(line)]
    assert rc == 2, f"exit code {rc}, stderr:\n{stderr}"
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    line = lines[0]
    assert line.startswith(ERROR_PREFIX) and len(line) > len(ERROR_PREFIX), line
    for name in names:
        assert name in line, f"{name!r} not named in: {line}"
    for path, old in before.items():
        new = snapshot(path)
        if old is None:
            assert not new or all(k.endswith("/") for k in new), f"{path} did not exist, now holds {sorted(new)}"
        else:
            assert new is not None, f"{path} was deleted"
            assert sorted(new) == sorted(old), f"{path}: files changed: {sorted(set(new) ^ set(old))}"
            changed = [k for k in old if new[k] != old[k]]
            assert not changed, f"{path}: files rewritten: {changed}"
    return line


# ----------------------------------------------------------------------------- inputs
@dataclasses.dataclass
class Input:
    argv: list[str]                    # after `read-jax run`
    names: tuple[str, ...]             # what the error line must name (field, file, value)
    watch: list[Path]                  # directories that must be left as they were
    fsize: int | None = None           # run in a subprocess under this RLIMIT_FSIZE (bytes)


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    build: Callable[["Env"], Input]
    stage: str = "parse"               # where it must be rejected (see `_assert_rejected`)


CASES: list[Case] = []


def case(id: str, stage: str = "parse"):
    assert stage in ("parse", "load", "run")

    def register(fn: Callable[["Env"], Input]) -> Callable[["Env"], Input]:
        CASES.append(Case(id, fn, stage))
        return fn
    return register


def _world_tokenizer():
    from read_jax.worlds import World

    return World(0).tokenizer()


def _decoder(vocab: int, eos: int, pad: int, seed: int = 0, context: int = 256, tie: bool = True):
    from read_jax.models import DecoderConfig, init_decoder

    config = DecoderConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=tie,
                           eos_token_id=eos, pad_token_id=pad, max_position_embeddings=context)
    return init_decoder(config, seed)


def save_world_model(path: Path, seed: int = 0, vocab_extra: int = 0, context: int = 256, tie: bool = False,
                     max_shard_size: int | str = "5GB") -> Path:
    from read_jax.models import save_hf

    tok = _world_tokenizer()
    save_hf(_decoder(len(tok) + vocab_extra, tok.eos_token_id, tok.pad_token_id, seed, context, tie), path,
            max_shard_size=max_shard_size)
    return path


class Env:
    """What one case may use: its tmp dir, the shared models and the finished experiment (built lazily)."""

    def __init__(self, request, tmp_path: Path):
        self.request, self.tmp = request, tmp_path
        self.out = tmp_path / "out"

    @property
    def world(self) -> Path:
        return self.request.getfixturevalue("world_models")

    @property
    def real(self) -> Path:
        return self.request.getfixturevalue("real_models")

    def finished(self) -> Path:
        """A private copy of the finished tiny experiment."""
        dst = self.tmp / "exp"
        shutil.copytree(self.request.getfixturevalue("finished_experiment"), dst, symlinks=True)
        return dst

    def world_config(self, name: str = "exp.yaml", teacher: str | Path | None = None,
                     student: str | Path | None = None, text: str | None = None, **fields) -> Path:
        """A tiny world experiment YAML.  Config-only cases leave the models at paths that do not exist, so
        a case the parser wrongly accepts fails at once (and the stage check names it) instead of running."""
        path = self.tmp / name
        if text is not None:
            path.write_text(text)
            return path
        data = {"source": "world", "teacher": str(teacher or self.tmp / "no-teacher"),
                "student": str(student or self.tmp / "no-student"), "loop": dict(LOOP),
                "policies": ["uniform"], "requirement": "uniform", "eval_split": "dev", **fields}
        path.write_text(yaml.safe_dump(data))
        return path

    def models_config(self, **fields) -> Path:
        """A world config on the shared tiny teacher and student (fields override, e.g. student=DIR)."""
        fields.setdefault("teacher", self.world / "teacher")
        fields.setdefault("student", self.world / "student")
        return self.world_config(**fields)

    def real_config(self, real: dict | None = None, **fields) -> Path:
        base = {"pack_tasks": {"mix": {"math": 0.5, "tool_use": 0.5}}, "pack_task_sizes": [4, 6]}
        data = {"source": "real", "teacher": str(self.real / "teacher"), "student": str(self.real / "student"),
                "loop": {**LOOP, "task": "mix", "max_prompt_tokens": 512}, "policies": ["uniform"],
                "requirement": "uniform", "real": {**base, **(real or {})}, **fields}
        path = self.tmp / "real.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def run(self, config: Path, *overrides: str, names: tuple[str, ...] = (), **kw) -> Input:
        return Input(["--out", str(self.out), str(config), *overrides], names, [self.out], **kw)

    def pack(self) -> Path:
        """A private copy of the read8 pack to break."""
        dst = self.tmp / "pack"
        shutil.copytree(PACK_DIR, dst)
        return dst


# ----------------------------------------------------------------------------- shared inputs
@pytest.fixture(scope="module")
def world_models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world_models")
    save_world_model(root / "teacher", seed=0)
    save_world_model(root / "student", seed=1)
    return root


@pytest.fixture(scope="module")
def real_models(tmp_path_factory) -> Path:
    """A chat tokenizer (tests/real_fixtures.py) and tiny decoders on it (config.json + weights + tokenizer)."""
    from real_fixtures import build_tokenizer
    from read_jax.models import save_hf

    root = tmp_path_factory.mktemp("real_models")
    tok = build_tokenizer()
    for name, seed, extra in (("teacher", 0, 0), ("student", 1, 0), ("student_vocab", 1, 8)):
        model = _decoder(len(tok) + extra, tok.eos_token_id, tok.pad_token_id, seed, context=4096)
        save_hf(model, root / name, tokenizer=tok)
    build_tokenizer(vocab_size=400).save_pretrained(str(root / "big_tokenizer"))
    build_tokenizer(chat_template=None).save_pretrained(str(root / "no_chat_tokenizer"))
    return root


@pytest.fixture(scope="module")
def finished_experiment(tmp_path_factory, world_models) -> Path:
    """A tiny experiment whose one policy (uniform, 2 intervals, requirement uniform) has finished: what
    ``--resume`` reads (config, version, requirement, run files, orbax checkpoints); the report and its
    evaluations are left out to keep the module fast."""
    from read_jax.config import from_dict
    from read_jax.experiment import Experiment, ExperimentConfig

    out = tmp_path_factory.mktemp("finished") / "exp"
    config = from_dict(ExperimentConfig, {"source": "world", "teacher": str(world_models / "teacher"),
                                          "student": str(world_models / "student"), "loop": LOOP,
                                          "policies": ["uniform"], "requirement": "uniform", "eval_split": "dev"})
    exp = Experiment(config, out, progress=False)
    try:
        exp.run_policy("uniform", np.asarray(exp.requirement()["estimated"]))
    finally:
        exp.close()
    history = out / "runs" / "uniform" / "history.jsonl"
    assert (out / "experiment.json").is_file() and len(history.read_text().splitlines()) == LOOP["intervals"]
    return out


@pytest.fixture(autouse=True)
def _cli_env(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("READ_JAX_MALLOC", "default")  # `read-jax run` must not re-exec this process
    monkeypatch.setenv("READ_JAX_CACHE", str(tmp_path_factory.getbasetemp() / "read_jax_cache"))
    for name in ("READ_JAX_KILL_AT", "READ_JAX_NAN_AT", "READ_JAX_FAULT_TRACE"):
        monkeypatch.delenv(name, raising=False)


def _run_cli(inp: Input, capsys) -> tuple[int, str]:
    if inp.fsize is None:
        capsys.readouterr()
        try:
            rc = cli.main(["run", *inp.argv])
        except SystemExit as err:  # argparse
            rc = err.code
        except Exception as err:  # a traceback instead of one line: fail with the gist (rendering the whole
            first = (str(err).splitlines() or [""])[0][:300]  # orbax traceback trips pytest up)
            pytest.fail(f"uncaught {type(err).__name__}: {first}", pytrace=False)
        return rc, capsys.readouterr().err

    def limit() -> None:  # in the child: writes past `fsize` bytes fail with EFBIG instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (inp.fsize, inp.fsize))

    with warnings.catch_warnings():  # "os.fork() was called [with jax's threads running]": the child execs at once
        warnings.simplefilter("ignore", RuntimeWarning)
        r = subprocess.run([sys.executable, "-m", "read_jax.cli", "run", *inp.argv], env=dict(os.environ),
                           cwd=REPO, capture_output=True, text=True, preexec_fn=limit, timeout=300)
    return r.returncode, r.stderr


# ============================================================================= config values
@case("yaml-unknown-key")
def _(env: Env) -> Input:
    return env.run(env.world_config(text="source: world\npolcies: [uniform]\n"), names=("'polcies'",))


@case("override-unknown-nested-key")
def _(env):
    return env.run(env.world_config(), "loop.budget=5000", names=("'loop.budget'",))


@case("override-wrong-type")
def _(env):
    return env.run(env.world_config(), "loop.budget_tokens=lots", names=("loop.budget_tokens", "'lots'"))


@case("yaml-float-for-int")
def _(env):
    return env.run(env.world_config(loop={**LOOP, "intervals": 2.5}), names=("loop.intervals", "2.5"))


@case("yaml-scalar-for-section")
def _(env):
    return env.run(env.world_config(), "loop=5", names=("loop", "mapping"))


@case("negative-budget")
def _(env):
    return env.run(env.world_config(), "loop.budget_tokens=-100", names=("budget_tokens", "-100"))


@case("zero-intervals")
def _(env):
    return env.run(env.world_config(), "loop.intervals=0", names=("intervals", ">= 1"))


@case("zero-dev-every")
def _(env):
    return env.run(env.world_config(), "loop.dev_every=0", names=("dev_every",))


@case("top-p-out-of-range")
def _(env):
    return env.run(env.world_config(), "loop.generation.top_p=1.5", names=("generation.top_p",))


@case("unknown-accounting")
def _(env):
    return env.run(env.world_config(), "loop.accounting=tokens", names=("loop.accounting", "'tokens'"))


@case("not-a-bool")
def _(env):
    return env.run(env.world_config(), "loop.generation.keep_unfinished=maybe",
                   names=("loop.generation.keep_unfinished", "true/false"))


@case("unknown-policy")
def _(env):
    return env.run(env.world_config(), "policies=[uniform,read_ucbb]", names=("policies", "'read_ucbb'"))


@case("unknown-loop-policy")
def _(env):
    return env.run(env.world_config(), "loop.policy=ucb", names=("loop.policy", "'ucb'"))


@case("fixed-allocation-off-simplex")
def _(env):
    return env.run(env.world_config(), 'policies=["best_fixed:0.5,0.7,0,0,0,0,0,0"]',
                   names=("policies", "best_fixed:0.5,0.7", "simplex"))


@case("fixed-allocation-negative-weight")
def _(env):
    return env.run(env.world_config(policies=["best_fixed:1.5,-0.5,0,0,0,0,0,0"]),
                   names=("policies", "best_fixed:1.5,-0.5", "simplex"))


@case("fixed-allocation-not-numbers")
def _(env):
    return env.run(env.world_config(policies=["best_fixed:half,half"]), names=("policies", "numbers"))


@case("allocation-for-a-learning-policy")
def _(env):
    return env.run(env.world_config(policies=["read_ucb:0.5,0.5"]), names=("policies", "only best_fixed"))


@case("fixed-allocation-wrong-length", stage="load")
def _(env):  # on the simplex, but 2 weights for the world's 8 capabilities: the source knows the count
    return env.run(env.world_config(policies=["best_fixed:0.5,0.5"]), names=("policies", "2 weights for 8"))


@case("duplicate-policy")
def _(env):
    return env.run(env.world_config(), "policies=[uniform,uniform]", names=("policies", "'uniform'", "twice"))


@case("empty-policies")
def _(env):
    return env.run(env.world_config(), "policies=[]", names=("policies",))


@case("unknown-source")
def _(env):
    return env.run(env.world_config(), "source=web", names=("source", "'web'"))


@case("unknown-requirement-mode")
def _(env):
    return env.run(env.world_config(), "requirement=oracle", names=("requirement", "'oracle'"))


@case("negative-interventions")
def _(env):
    return env.run(env.world_config(), "interventions=-1", names=("interventions", "-1"))


@case("unknown-world-preset")
def _(env):
    return env.run(env.world_config(), "world_preset=huge", names=("world_preset", "'huge'"))


@case("real-dtype")
def _(env):
    return env.run(env.world_config(), "real.dtype=float8", names=("real.dtype", "'float8'"))


@case("override-without-value")
def _(env):
    return env.run(env.world_config(), "loop.budget_tokens", names=("'loop.budget_tokens'", "key.sub=value"))


@case("override-into-a-value")
def _(env):
    return env.run(env.world_config(), "loop.budget_tokens.max=1", names=("'loop.budget_tokens.max'",))


@case("yaml-syntax-error")
def _(env):
    path = env.world_config(text="loop: {task: dev_assistant\npolicies: [uniform]\n")
    return env.run(path, names=(str(path), "invalid YAML"))


@case("yaml-not-a-mapping")
def _(env):
    path = env.world_config(text="- uniform\n- read_ucb\n")
    return env.run(path, names=(str(path), "mapping"))


@case("config-file-missing")
def _(env):
    return env.run(env.tmp / "missing.yaml", names=(str(env.tmp / "missing.yaml"), "not found"))


@case("neither-config-nor-resume")
def _(env):
    return Input(["--out", str(env.out)], ("CONFIG", "--resume"), [env.out])


# ============================================================================= checkpoints
@case("model-dir-missing", stage="load")
def _(env):
    return env.run(env.models_config(student=env.tmp / "nowhere"), names=("student", str(env.tmp / "nowhere")))


@case("unknown-recipe", stage="load")
def _(env):
    return env.run(env.world_config(teacher="recipe:giant"), names=("teacher", "'giant'"))


@case("config-json-missing", stage="load")
def _(env):
    bad = shutil.copytree(env.world / "student", env.tmp / "student")
    (bad / "config.json").unlink()
    return env.run(env.models_config(student=bad), names=("student", str(bad / "config.json")))


@case("config-json-truncated", stage="load")
def _(env):
    bad = shutil.copytree(env.world / "student", env.tmp / "student")
    (bad / "config.json").write_text((bad / "config.json").read_text()[:40])
    return env.run(env.models_config(student=bad), names=("student", str(bad / "config.json")))


@case("missing-shard", stage="load")
def _(env):
    bad = save_world_model(env.tmp / "student", seed=1, max_shard_size=20_000)
    shard = sorted(bad.glob("model-*.safetensors"))[-1]
    shard.unlink()
    return env.run(env.models_config(student=bad), names=("student", "model.safetensors.index.json", shard.name))


@case("truncated-safetensors", stage="load")
def _(env):
    bad = shutil.copytree(env.world / "student", env.tmp / "student")
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return env.run(env.models_config(student=bad), names=("student", str(weights), "truncated"))


def _rewrite_tensor(src: Path, dst: Path, key: str, value: Callable[[np.ndarray], np.ndarray]) -> Path:
    from safetensors.numpy import load_file, save_file

    shutil.copytree(src, dst)
    tensors = load_file(str(dst / "model.safetensors"))
    tensors[key] = value(tensors[key])
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


@case("wrong-dtype", stage="load")
def _(env):
    bad = _rewrite_tensor(env.world / "student", env.tmp / "student", "model.norm.weight", lambda t: t.astype(np.int32))
    return env.run(env.models_config(student=bad), names=("student", str(bad), "model.norm.weight", "int32"))


@case("wrong-shape", stage="load")
def _(env):
    key = "model.layers.0.mlp.up_proj.weight"
    bad = _rewrite_tensor(env.world / "student", env.tmp / "student", key, lambda t: t[:-1])
    return env.run(env.models_config(student=bad), names=("student", str(bad), key, "shape"))


@case("vocab-student-vs-world-tokenizer", stage="load")
def _(env):
    bad = save_world_model(env.tmp / "student", seed=1, vocab_extra=4)
    return env.run(env.models_config(student=bad), names=("student", str(bad), "vocabulary"))


@case("vocab-teacher-vs-student", stage="load")
def _(env):
    return env.run(env.real_config(student=str(env.real / "student_vocab")),
                   names=("student", str(env.real / "student_vocab"), "vocabulary size"))


@case("vocab-tokenizer-vs-models", stage="load")
def _(env):
    return env.run(env.real_config(real={"tokenizer": str(env.real / "big_tokenizer")}),
                   names=("tokenizer", str(env.real / "big_tokenizer"), "real.tokenizer"))


@case("tokenizer-without-chat-template", stage="load")
def _(env):
    return env.run(env.real_config(real={"tokenizer": str(env.real / "no_chat_tokenizer")}),
                   names=(str(env.real / "no_chat_tokenizer"), "real.chat_template"))


@case("chat-template-file-missing", stage="load")
def _(env):
    return env.run(env.real_config(real={"chat_template": str(env.tmp / "chat.jinja")}),
                   names=("real.chat_template", str(env.tmp / "chat.jinja")))


# ============================================================================= task cards and templates
def _cards(env: Env, card: dict | None = None, data: str = '{"prompt": "1+1?", "answer": "2"}\n') -> Path:
    """A cards file with one task ``t`` on a local generic_jsonl file (``card`` overrides its fields)."""
    (env.tmp / "items.jsonl").write_text(data)
    source = {"source": "local", "path": "items.jsonl", "format": "generic_jsonl"}
    fields = {"capability": "math", "description": "d", "input_format": "i", "output_format": "o",
              "dev": source, "test": source, "eval_type": "exact_match", **(card or {})}
    path = env.tmp / "cards.yaml"
    path.write_text(yaml.safe_dump({"tasks": {"t": {k: v for k, v in fields.items() if v is not None}}}))
    return path


@case("cards-file-missing", stage="load")
def _(env):
    missing = env.tmp / "cards.yaml"
    return env.run(env.real_config(real={"cards": str(missing)}), "loop.task=t", names=(str(missing), "not found"))


@case("card-missing-field", stage="load")
def _(env):
    cards = _cards(env, {"eval_type": None})
    return env.run(env.real_config(real={"cards": str(cards)}), "loop.task=t",
                   names=(str(cards), "tasks.t.eval_type", "missing"))


@case("card-unknown-capability", stage="load")
def _(env):
    cards = _cards(env, {"requirement_vector": {"math": 0.5, "telepathy": 0.5}})
    return env.run(env.real_config(real={"cards": str(cards)}), "loop.task=t",
                   names=(str(cards), "tasks.t.requirement_vector.telepathy"))


@case("card-empty-test-data", stage="load")
def _(env):
    cards = _cards(env, data="")
    return env.run(env.real_config(real={"cards": str(cards)}), "loop.task=t",
                   names=(str(cards), "tasks.t.test", "no items"))


@case("task-not-configured", stage="load")
def _(env):
    return env.run(env.real_config(), "loop.task=humaneval", names=("loop.task", "'humaneval'", "real.cards"))


@case("pack-task-unknown-capability", stage="load")
def _(env):
    return env.run(env.real_config(real={"pack_tasks": {"mix": {"math": 0.5, "telepathy": 0.5}}}),
                   names=("real.pack_tasks.mix", "'telepathy'"))


@case("pack-dir-missing", stage="load")
def _(env):
    return env.run(env.real_config(real={"pack": str(env.tmp / "nopack")}), names=("real.pack", str(env.tmp / "nopack")))


@case("pack-manifest-missing-field", stage="load")
def _(env):
    pack = env.pack()
    manifest = json.loads((pack / "pack.json").read_text())
    del manifest["share_cap"]
    (pack / "pack.json").write_text(json.dumps(manifest))
    return env.run(env.real_config(real={"pack": str(pack)}), names=(str(pack / "pack.json"), "'share_cap'"))


def _break_template(env: Env, edit: Callable[[dict], None]) -> tuple[Path, Path]:
    """The read8 copy with the first template of math.jsonl edited; (pack, template file)."""
    pack = env.pack()
    path = pack / "templates" / "math.jsonl"
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    edit(first)
    path.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    return pack, path


@case("template-undeclared-slot", stage="load")
def _(env):
    pack, path = _break_template(env, lambda t: t.update(scaffold=t["scaffold"] + " Show {work}."))
    return env.run(env.real_config(real={"pack": str(pack)}), names=(f"{path}:1", "'work'"))


@case("template-missing-field", stage="load")
def _(env):
    pack, path = _break_template(env, lambda t: t.pop("capability"))
    return env.run(env.real_config(real={"pack": str(pack)}), names=(f"{path}:1", "capability"))


@case("template-unknown-pool", stage="load")
def _(env):
    pack, path = _break_template(env, lambda t: t["slots"].update(a="numbers.a"))
    return env.run(env.real_config(real={"pack": str(pack)}), names=(f"{path}:1", "slots.a", "'numbers.a'"))


@case("empty-seed-pool", stage="load")
def _(env):
    pack = env.pack()
    pools = json.loads((pack / "pools" / "math.json").read_text())
    pools["operands"]["records"] = []
    (pack / "pools" / "math.json").write_text(json.dumps(pools))
    return env.run(env.real_config(real={"pack": str(pack)}), names=("math.jsonl", "pool 'operands' is empty"))


# ============================================================================= context and teacher output
@case("prompt-limit-beyond-context", stage="load")
def _(env):
    return env.run(env.models_config(), "loop.max_prompt_tokens=1000",
                   names=("loop.max_prompt_tokens", "256", str(env.world / "teacher" / "config.json")))


@case("probe-prompt-longer-than-context", stage="run")
def _(env):
    short = save_world_model(env.tmp / "short", context=16)
    return env.run(env.models_config(teacher=short, student=short), names=("teacher", "context of 16",
                                                                           "loop.max_prompt_tokens"))


@case("empty-teacher-output", stage="run")
def _(env):
    from safetensors.numpy import load_file, save_file

    mute = save_world_model(env.tmp / "mute")
    eos = _world_tokenizer().eos_token_id
    t = load_file(str(mute / "model.safetensors"))
    for key in t:  # every layer adds nothing; every token embeds to e0; the head maps e0 to eos
        if key.endswith(("o_proj.weight", "down_proj.weight")):
            t[key] = np.zeros_like(t[key])
    t["model.embed_tokens.weight"] = np.zeros_like(t["model.embed_tokens.weight"])
    t["model.embed_tokens.weight"][:, 0] = 1.0
    t["lm_head.weight"] = np.zeros_like(t["lm_head.weight"])
    t["lm_head.weight"][eos, 0] = 10.0
    save_file(t, str(mute / "model.safetensors"), metadata={"format": "pt"})
    return env.run(env.models_config(teacher=mute), names=("teacher", "empty"))


# ============================================================================= output directory
@case("out-is-a-file")
def _(env):
    env.out.write_text("not a directory")
    return env.run(env.world_config(), names=(str(env.out), "--out"))


@case("out-under-a-file", stage="load")
def _(env):
    blocker = env.tmp / "file"
    blocker.write_text("not a directory")
    out = blocker / "exp"
    return Input(["--out", str(out), str(env.models_config())], (str(blocker), "--out"), [blocker, out])


@case("disk-full-at-start", stage="run")
def _(env):
    return env.run(env.models_config(), names=(str(env.out), "cannot write"), fsize=1)


@case("disk-full-mid-setup", stage="run")
def _(env):
    return env.run(env.models_config(), names=(str(env.out / "experiment.json"), "cannot write"), fsize=300)


@case("out-holds-another-experiment")
def _(env):
    exp = env.finished()
    return Input(["--out", str(exp), str(env.models_config()), "loop.seed=7"],
                 (str(exp / "experiment.json"), "loop.seed"), [exp])


# ============================================================================= resume
@case("resume-not-an-experiment")
def _(env):
    env.out.mkdir()
    (env.out / "notes.txt").write_text("hello")
    return Input(["--resume", str(env.out)], (str(env.out), "experiment.json"), [env.out])


@case("resume-bad-override")
def _(env):
    exp = env.finished()
    return Input(["--resume", str(exp), "loop.budget_tokens=-5"], ("budget_tokens", "-5"), [exp])


@case("resume-truncated-experiment-json")
def _(env):
    exp = env.finished()
    path = exp / "experiment.json"
    path.write_bytes(path.read_bytes()[:100])
    return Input(["--resume", str(exp)], (str(path), "corrupt"), [exp])


@case("resume-corrupt-requirement-json", stage="run")
def _(env):
    exp = env.finished()
    (exp / "requirement.json").write_text('{"mode": "unif')
    return Input(["--resume", str(exp)], (str(exp / "requirement.json"), "corrupt"), [exp])


@case("resume-truncated-history", stage="run")
def _(env):
    exp = env.finished()
    path = exp / "runs" / "uniform" / "history.jsonl"
    path.write_bytes(path.read_bytes()[:300])
    return Input(["--resume", str(exp)], (str(path), "line 1"), [exp])


def _latest_step(exp: Path) -> Path:
    return max((p for p in (exp / "runs" / "uniform" / "checkpoints").iterdir() if p.name.isdigit()),
               key=lambda p: int(p.name))


@case("resume-truncated-orbax-arrays", stage="run")
def _(env):
    exp = env.finished()
    step = _latest_step(exp)
    for f in (step / "state").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.write_bytes(f.read_bytes()[:10])
    return Input(["--resume", str(exp)], (str(step), "corrupt"), [exp])


@case("resume-corrupt-orbax-metadata", stage="run")
def _(env):
    exp = env.finished()
    step = _latest_step(exp)
    (step / "meta" / "metadata").write_text('{"t": 2, "hist')
    return Input(["--resume", str(exp)], (str(step), "corrupt"), [exp])


# ============================================================================= the test
@pytest.mark.parametrize("bad", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_the_directory(bad: Case, request, tmp_path, capsys):
    inp = bad.build(Env(request, tmp_path))
    before = {p: snapshot(p) for p in inp.watch}
    rc, err = _run_cli(inp, capsys)
    line = _assert_rejected(rc, err, inp.names, before, bad.stage)
    if os.environ.get("BAD_INPUT_TABLE"):  # collects the lines of tests/BAD_INPUT.md's error column
        with open(os.environ["BAD_INPUT_TABLE"], "a") as f:
            f.write(json.dumps({"id": bad.id, "line": line, "tmp": str(tmp_path),
                                "base": str(request.config._tmp_path_factory.getbasetemp())}) + "\n")


def test_every_case_has_its_own_id():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 30
