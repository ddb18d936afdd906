"""`read-jax bench device`: how close ReAD's compiled programs come to the chip's limits.

    read-jax bench device [--json] [--size tiny|0.5b|1.5b] [--batches 1 8 64] [--repeats 5]

Runs on whatever jax finds first (one device: a GPU, a TPU chip, or the CPU) with random
weights, in bfloat16, for a teacher / student pair of Qwen2.5 shapes:
``0.5b``: Qwen2.5-0.5B-like student, Qwen2.5-1.5B-like teacher; ``1.5b``: 1.5B-like student,
3B-like teacher; ``tiny``: a few-layer pair for CPU tests.  Three measurements:

- KD train step (`Distiller`: teacher forward + student forward / backward + AdamW, CE +
  forward KL): model FLOP utilisation = model FLOPs / step time / the chip's peak
  (`read_jax.accelerators`).  Model FLOPs per token: 6 N_student + 2 N_teacher (N: parameters
  that multiply, `read_jax.plan.matmul_params`) plus causal attention (half the score matrix):
  6 (student, forward and backward) and 2 (teacher, forward) × layers × heads × head_dim ×
  length.  Target: ≥ 45 %.
- Decode (the teacher's `Sampler`, greedy, no eos) at batch 1, 8 and 64: one decode step's
  time is the difference between generating N and N/2 + 1 tokens (same compiled program, same
  prefill) over the steps in between; tokens/s = rows / step time; bandwidth utilisation =
  bytes a step must read (the multiplying weights + the full KV cache) / step time / the
  chip's HBM bandwidth.  Target at batch 1: ≥ 60 %.
- One synthetic ReAD interval with the loop's components: teacher generation (temperature 0.2,
  top-p 0.95), student training on the answers (CE, as the loop's `Distiller`), and the probe
  forward (`read_jax.capabilities.probes`); wall-time share of each phase.

Every program is compiled and run once before it is timed; compile (first-call) seconds are
reported separately.  On a CPU, FLOP/s and bytes/s are reported and the utilisations are null
(no peak to divide by).  Sized to run in under 5 minutes on an H100-class GPU at ``0.5b``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

TARGETS = {"kd_step_mfu": 0.45, "decode_hbm_bandwidth_batch1": 0.60}

_QWEN = dict(model_type="qwen2", vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6,
             max_position_embeddings=32768)
MODELS = {  # published Qwen2.5 shapes (config.json)
    "qwen2.5-0.5b": dict(_QWEN, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2),
    "qwen2.5-1.5b": dict(_QWEN, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2),
    "qwen2.5-3b": dict(_QWEN, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                       num_attention_heads=16, num_key_value_heads=2),
    "tiny-student": dict(_QWEN, vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512),
    "tiny-teacher": dict(_QWEN, vocab_size=512, hidden_size=96, intermediate_size=192, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512),
}
# student, teacher, KD batch (rows, length), decode (prompt, new tokens) and batches, interval (prompts, rows);
# the interval's prompt count is a decode batch, so its generation reuses that batch's programs.
# tiny is the CPU test size: two decode batches, and train steps compiled without LLVM optimisation
# (3x faster to compile, slower to run; its timings mean nothing anyway).
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(student="tiny-student", teacher="tiny-teacher", train=(4, 64), decode=(8, 16), batches=(1, 8),
                 interval=(8, 4), compiler_options={"xla_backend_optimization_level": 0}),
    "0.5b": dict(student="qwen2.5-0.5b", teacher="qwen2.5-1.5b", train=(16, 1024), decode=(128, 128),
                 batches=(1, 8, 64), interval=(64, 16), compiler_options=None),
    "1.5b": dict(student="qwen2.5-1.5b", teacher="qwen2.5-3b", train=(8, 1024), decode=(128, 128),
                 batches=(1, 8, 64), interval=(64, 16), compiler_options=None),
}


def _config(name: str):
    from read_jax.models.config import DecoderConfig

    return DecoderConfig.from_hf_dict(MODELS[name], dtype="bfloat16")


def _seconds(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` (each call must end with a host sync)."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _first_call(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _ratio(value: float, peak: float | None) -> float | None:
    return None if peak is None else value / peak


def attention_flops(config, length: int, passes: int) -> float:
    """Causal attention FLOPs per token: score and value products (2 · 2 · heads · head_dim FLOPs
    per key) over half the keys on average, per layer and pass (1: forward, 3: forward + backward)."""
    return 2.0 * passes * config.num_hidden_layers * config.num_attention_heads * config.head_dim * length


def random_tokens(rng: np.random.Generator, vocab: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(1, vocab, shape).astype(np.int32)


# ----------------------------------------------------------------------------- measurements
def kd_step(student, teacher, rows: int, length: int, repeats: int, chip,
            compiler_options: dict[str, Any] | None = None) -> dict[str, Any]:
    import jax

    from read_jax.distill.losses import LossConfig
    from read_jax.distill.train_step import Distiller, OptimizerConfig
    from read_jax.plan import matmul_params

    distiller = Distiller(student, teacher, LossConfig(ce=1.0, kl=1.0), OptimizerConfig(),
                          compiler_options=compiler_options)
    rng = np.random.default_rng(0)
    ids = random_tokens(rng, student.config.vocab_size, (rows, length))
    batch = distiller.place_batch({"input_ids": ids, "attention_mask": np.ones_like(ids),
                                   "labels": np.roll(ids, -1, axis=1), "loss_mask": np.ones_like(ids)})

    def step() -> None:
        jax.block_until_ready((distiller.step_raw(batch), distiller.params))

    compile_s = _first_call(step)
    times = _seconds(step, repeats)
    s, t = student.config, teacher.config
    per_token = (6 * matmul_params(s) + attention_flops(s, length, 3)
                 + 2 * matmul_params(t) + attention_flops(t, length, 1))
    flops = per_token * rows * length
    med = statistics.median(times)
    mfu = _ratio(flops / med, chip.peak_flops if chip else None)
    return {"rows": rows, "length": length, "loss": "CE + forward KL (T = 1), teacher forward in the step",
            "model_flops_per_token": per_token, "model_flops_per_step": flops, "step_s_median": med,
            "step_s_min": min(times), "tokens_per_s": rows * length / med, "flops_per_s": flops / med, "mfu": mfu,
            "target_mfu": TARGETS["kd_step_mfu"], "target_met": None if mfu is None else mfu >= TARGETS["kd_step_mfu"],
            "compile_s": compile_s}


def decode(sampler, batch: int, prompt: int, new_tokens: int, repeats: int, chip) -> dict[str, Any]:
    """Decode step time from generating ``new_tokens`` vs ``new_tokens // 2 + 1`` tokens (one program)."""
    import jax.numpy as jnp

    from read_jax.plan import matmul_params
    from read_jax.sampling import MIN_PROMPT_BUCKET, bucket

    config = sampler.config
    prompts = random_tokens(np.random.default_rng(batch), config.vocab_size, (batch, prompt)).tolist()
    short = new_tokens // 2 + 1

    def run(n: int) -> Callable[[], Any]:
        return lambda: sampler.generate(prompts, max_new_tokens=n, eos_id=[])

    compile_s = _first_call(run(new_tokens))
    full = statistics.median(_seconds(run(new_tokens), repeats))
    part = statistics.median(_seconds(run(short), repeats))
    step_s = max(full - part, 1e-9) / (new_tokens - short)
    rows = bucket(batch)
    slots = bucket(prompt, MIN_PROMPT_BUCKET) + bucket(new_tokens)
    item = jnp.dtype(config.dtype).itemsize
    kv = 2 * config.num_hidden_layers * rows * config.num_key_value_heads * config.head_dim * slots * item
    nbytes = matmul_params(config) * item + kv
    return {"batch": batch, "rows": rows, "prompt_length": prompt, "new_tokens": new_tokens, "cache_slots": slots,
            "step_s": step_s, "tokens_per_s": batch / step_s, "bytes_per_step": nbytes,
            "bytes_per_s": nbytes / step_s, "bandwidth_utilisation": _ratio(nbytes / step_s,
                                                                            chip.hbm_bandwidth if chip else None),
            "generate_s": full, "compile_s": compile_s}


def interval(sampler, student, prompts_n: int, prompt: int, new_tokens: int, rows: int,
             compiler_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One synthetic ReAD interval (generate → train → probe), run twice; the second is timed."""
    import jax
    from flax import nnx

    from read_jax.capabilities.probes import _token_loglik_sums
    from read_jax.distill.batching import TokenExample, make_batches
    from read_jax.distill.losses import LossConfig
    from read_jax.distill.train_step import Distiller, OptimizerConfig

    vocab = student.config.vocab_size
    distiller = Distiller(student, None, LossConfig(ce=1.0, chunk_size=None), OptimizerConfig(),  # as the loop's
                          compiler_options=compiler_options)
    rng = np.random.default_rng(1)
    prompts = random_tokens(rng, vocab, (prompts_n, prompt)).tolist()
    probe = make_batches([TokenExample(p, p[:new_tokens]) for p in prompts[:rows]], rows)[0][0].arrays

    def phases() -> dict[str, float]:
        seconds = {}
        t0 = time.perf_counter()
        out = sampler.generate(prompts, max_new_tokens=new_tokens, temperature=0.2, top_p=0.95, eos_id=[])
        seconds["generation"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        batches, _ = make_batches([TokenExample(p, r) for p, r in zip(prompts, out.tokens)], rows)
        for b in batches:
            distiller.step(b.arrays)
        seconds["train"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        graphdef, params = nnx.split(distiller.student)
        jax.block_until_ready(_token_loglik_sums(graphdef, params, probe))
        seconds["probe_forward"] = time.perf_counter() - t0
        return seconds

    warmup = phases()
    seconds = phases()
    total = sum(seconds.values())
    return {"prompts": prompts_n, "prompt_length": prompt, "new_tokens": new_tokens, "rows": rows,
            "seconds": seconds, "shares": {k: v / total for k, v in seconds.items()},
            "warmup_s": sum(warmup.values())}


# ----------------------------------------------------------------------------- command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="read-jax bench device")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--size", choices=sorted(SIZES), default="0.5b")
    parser.add_argument("--batches", type=int, nargs="+", help="decode batch sizes (default: 1 8 64; tiny: 1 8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()

    import jax

    from read_jax.accelerators import detect
    from read_jax.models import init_decoder
    from read_jax.sampling import Sampler

    size = SIZES[args.size]
    device = jax.devices()[0]
    chip = None if device.platform == "cpu" else detect(device.device_kind)
    student_cfg, teacher_cfg = _config(size["student"]), _config(size["teacher"])
    teacher = init_decoder(teacher_cfg, seed=1)
    rows, length = size["train"]
    prompt, new_tokens = size["decode"]
    out: dict[str, Any] = {
        "benchmark": "device", "size": args.size,
        "device": {"platform": device.platform, "kind": device.device_kind, "count": jax.device_count(),
                   "accelerator": chip.name if chip else None, "peak_flops": chip.peak_flops if chip else None,
                   "hbm_bandwidth": chip.hbm_bandwidth if chip else None},
        "models": {"student": size["student"], "teacher": size["teacher"], "dtype": "bfloat16",
                   "student_params": student_cfg.num_params(), "teacher_params": teacher_cfg.num_params()},
        "targets": TARGETS,
        "versions": {"jax": jax.__version__},
    }
    options = size["compiler_options"]
    out["kd_step"] = kd_step(init_decoder(student_cfg, seed=0), teacher, rows, length, args.repeats, chip, options)
    sampler = Sampler(teacher)
    batches = args.batches or size["batches"]
    out["decode"] = [decode(sampler, b, prompt, new_tokens, args.repeats, chip) for b in batches]
    first = next((d for d in out["decode"] if d["batch"] == 1), None)
    util = first["bandwidth_utilisation"] if first else None
    out["decode_target_met"] = None if util is None else util >= TARGETS["decode_hbm_bandwidth_batch1"]
    prompts_n, interval_rows = size["interval"]
    out["interval"] = interval(sampler, init_decoder(student_cfg, seed=2), prompts_n, prompt, new_tokens,
                               interval_rows, options)
    out["total_s"] = time.perf_counter() - t_start
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(format_summary(out))
    return 0


def _pct(x: float | None) -> str:
    return "n/a (no peak for this device)" if x is None else f"{x:.1%}"


def format_summary(out: dict[str, Any]) -> str:
    k, dev = out["kd_step"], out["device"]
    lines = [f"device {dev['kind']} ({dev['accelerator'] or 'no table entry'}), size {out['size']}: "
             f"student {out['models']['student']}, teacher {out['models']['teacher']}, bfloat16",
             f"KD step {k['rows']} x {k['length']}: {k['step_s_median'] * 1e3:.1f} ms, {k['flops_per_s'] / 1e12:.2f} "
             f"model TFLOP/s, MFU {_pct(k['mfu'])} (target {TARGETS['kd_step_mfu']:.0%}; "
             f"compile {k['compile_s']:.1f} s)"]
    for d in out["decode"]:
        lines.append(f"decode batch {d['batch']:>3}: {d['tokens_per_s']:,.0f} tokens/s, {d['bytes_per_s'] / 1e9:,.1f} "
                     f"GB/s, bandwidth {_pct(d['bandwidth_utilisation'])} (compile {d['compile_s']:.1f} s)")
    shares = ", ".join(f"{name} {v:.0%}" for name, v in out["interval"]["shares"].items())
    lines.append(f"interval shares: {shares}; total {out['total_s']:.0f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
