"""Benchmark: greedy generation tokens/s of `read_jax.sampling.generate` vs transformers `generate`.

Both sides run the same random Llama (weights saved by torch with ``save_pretrained`` and
loaded with `load_hf`, so they are identical) on this machine's CPU cores in one process:
batch 8, prompts of 32 tokens, 128 new tokens, no eos (both sides generate the full length).
torch gets ``torch.set_num_threads(<threads>)`` (default: the machine's core count); XLA uses
the same cores.  Compile time (first call) is reported separately from the timed repeats.
`weight_stream_floor` times a loop that does nothing but multiply a batch of activations by
every weight matrix a decode step reads, as the decode step multiplies them: the floor of a
float32 decode step's products on this machine, and the tokens/s (and ratio to torch) it
would allow.
read_jax runs through a `Sampler` built once (one ``nnx.split``; its cost is reported).
Rounds alternate read_jax / torch so both see the same machine load; wall and process CPU
seconds are both reported, with the load average.  On a loaded machine torch's 2-thread
kernels degrade far more than 1-thread ones, so torch is also timed with
``--torch-reference-threads`` (default 1) as a reference.

    read-jax bench sampler [--json] [--repeats 9] [--batch 8] [--prompt-len 32] [--new-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np

MODEL = dict(vocab_size=2048, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)


def _stats(xs: list[float]) -> dict[str, float]:
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)}


def weight_stream_floor(model, batch: int, steps: int = 128, repeats: int = 3) -> dict[str, float]:
    """The decode step's matrix products alone: a loop of ``steps`` iterations that multiplies a
    feature-major [in, batch] activation by every matrix the step reads, in the layout and
    with the compiler options the sampler's decode uses on this backend (`DecodeMatrices`:
    one product per projection group and the output head; not the embedding, which is
    gathered), one after the other, nothing else.

    With a batch of a few rows a decode step is bound by reading its weights, and its
    products form a dependency chain (each layer waits for the one before); this loop keeps
    both properties (every product's input depends, by a scalar, on the previous product's
    output, which also stops XLA hoisting them out of the loop), so its time per iteration is
    a floor the sampler's decode step does not beat.
    """
    import jax
    import jax.numpy as jnp

    from read_jax.sampling import DECODE_COMPILER_OPTIONS, DecodeMatrices

    cpu = jax.default_backend() == "cpu"
    matrices = DecodeMatrices.of(model, cpu=cpu)
    mats = [w if cpu else w.T for w in jax.tree.leaves(matrices.layers)]
    mats.append(matrices.head if cpu else matrices.head.T)  # all [out, in]
    dims = sorted({m.shape[1] for m in mats})

    def loop(mats, xs):
        def body(_, xs):
            total = jnp.zeros((), jnp.float32)
            for m in mats:
                total = total + jnp.sum(m @ (xs[dims.index(m.shape[1])] + 1e-9 * total))
            return tuple(x + 1e-9 * total for x in xs)
        return jax.lax.fori_loop(0, steps, body, xs)

    loop = jax.jit(loop, compiler_options=DECODE_COMPILER_OPTIONS)
    xs = tuple(jnp.ones((d, batch), jnp.float32) for d in dims)
    jax.block_until_ready(loop(mats, xs))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(loop(mats, xs))
        times.append((time.perf_counter() - t0) / steps)
    best = min(times)
    nbytes = int(sum(m.size * m.dtype.itemsize for m in mats))
    return {"weight_bytes_per_step": nbytes, "seconds_per_step": best, "gb_per_s": nbytes / best / 1e9,
            "tokens_per_s_ceiling": batch / best}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="read-jax bench sampler")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=9,
                        help="interleaved rounds per side (this 2-core VM varies ~25 %% between rounds)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--topk-logprobs", type=int, default=0, help="also capture the top-k (default off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-reference-threads", type=int, default=1,
                        help="also time torch with this many threads, as a reference (0 = skip); on a loaded "
                             "machine torch's multi-threaded kernels degrade far more than single-threaded ones")
    args = parser.parse_args(argv)

    import jax
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    import flax

    from read_jax.models import load_hf
    from read_jax.sampling import Sampler

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    hf_config = AutoConfig.for_model("llama", **MODEL, bos_token_id=None, eos_token_id=None, pad_token_id=0)
    torch_model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32).eval()
    torch_model.generation_config.eos_token_id = None
    rng = np.random.default_rng(args.seed)
    prompts = rng.integers(1, MODEL["vocab_size"], (args.batch, args.prompt_len))
    b, n = args.batch, args.new_tokens

    with tempfile.TemporaryDirectory() as tmp:
        torch_model.save_pretrained(tmp)
        model, config = load_hf(tmp)

    ids = torch.as_tensor(prompts, dtype=torch.long)
    attn = torch.ones_like(ids)

    t0 = time.perf_counter()
    sampler = Sampler(model)  # split once, as a ReAD run does for its fixed teacher
    sampler_seconds = time.perf_counter() - t0
    prompt_list = prompts.tolist()

    def run_jax():
        return sampler.generate(prompt_list, max_new_tokens=n, temperature=0.0, eos_id=[],
                                topk_logprobs=args.topk_logprobs)

    def run_torch():
        with torch.inference_mode():
            return torch_model.generate(input_ids=ids, attention_mask=attn, do_sample=False, max_new_tokens=n,
                                        min_new_tokens=n, pad_token_id=0, eos_token_id=None)

    def timed(fn, threads=None):
        if threads is not None:
            torch.set_num_threads(threads)
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0, time.process_time() - c0

    load_before = os.getloadavg()
    ours, first_call, _ = timed(run_jax)            # includes tracing + XLA compilation
    ref, torch_first, _ = timed(run_torch, args.threads)
    if args.torch_reference_threads:
        timed(run_torch, args.torch_reference_threads)
    times: dict[str, list[tuple[float, float]]] = {"read_jax": [], "torch": [], "torch_ref": []}
    for _ in range(args.repeats):  # interleaved, so both sides see the same machine load
        ours, wall, cpu = timed(run_jax)
        times["read_jax"].append((wall, cpu))
        ref, wall, cpu = timed(run_torch, args.threads)
        times["torch"].append((wall, cpu))
        if args.torch_reference_threads:
            _, wall, cpu = timed(run_torch, args.torch_reference_threads)
            times["torch_ref"].append((wall, cpu))
    torch.set_num_threads(args.threads)
    floor = weight_stream_floor(model, b)
    load_after = os.getloadavg()

    ref_tokens = ref[:, args.prompt_len:].numpy()
    our_tokens = np.asarray(ours.tokens)
    assert our_tokens.shape == ref_tokens.shape == (b, n), (our_tokens.shape, ref_tokens.shape)
    identical = bool((our_tokens == ref_tokens).all())
    # per row, how many leading tokens agree (a float near-tie can flip one argmax; the rest then differs)
    agree = [int(np.argmin(np.append(our_tokens[i] == ref_tokens[i], False))) for i in range(b)]

    def side(name: str) -> dict:
        wall = [w for w, _ in times[name]]
        cpu = [c for _, c in times[name]]
        tps = [b * n / w for w in wall]
        return {"tokens_per_s": b * n / statistics.median(wall), "tokens_per_s_stats": _stats(tps),
                "seconds": _stats(wall), "process_cpu_seconds": _stats(cpu)}

    jax_side, torch_side = side("read_jax"), side("torch")
    result = {
        "read_jax_tokens_per_s": jax_side["tokens_per_s"],
        "torch_tokens_per_s": torch_side["tokens_per_s"],
        "ratio": jax_side["tokens_per_s"] / torch_side["tokens_per_s"],
        "ratio_of_best": jax_side["tokens_per_s_stats"]["max"] / torch_side["tokens_per_s_stats"]["max"],
        "read_jax": jax_side,
        "torch": torch_side,
        "read_jax_first_call_seconds": first_call,
        "read_jax_compile_seconds": first_call - jax_side["seconds"]["median"],
        "read_jax_sampler_construction_seconds": sampler_seconds,
        "torch_first_call_seconds": torch_first,
        # read_jax's best round against the tokens/s that streaming the weights alone allows
        "weight_stream_floor": {**floor, "read_jax_best_share_of_ceiling":
                                jax_side["tokens_per_s_stats"]["max"] / floor["tokens_per_s_ceiling"],
                                "ratio_ceiling": floor["tokens_per_s_ceiling"] / torch_side["tokens_per_s"]},
        "tokens_identical": identical,
        "rows_agreeing_prefix": agree,
        "config": {**MODEL, "batch": b, "prompt_len": args.prompt_len, "new_tokens": n, "dtype": "float32",
                   "decoding": "greedy, no eos", "topk_logprobs": args.topk_logprobs, "repeats": args.repeats,
                   "timing": "interleaved read_jax / torch rounds; tokens_per_s = batch*new_tokens / median wall",
                   "torch_threads": args.threads, "torch_attn": torch_model.config._attn_implementation},
        "versions": {"jax": jax.__version__, "flax": flax.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version()},
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "jax_backend": jax.default_backend(), "jax_devices": len(jax.devices()),
                    "loadavg_before": load_before, "loadavg_after": load_after},
    }
    if args.torch_reference_threads:
        ref_side = side("torch_ref")
        result["torch_reference"] = {"threads": args.torch_reference_threads, **ref_side,
                                     "ratio": jax_side["tokens_per_s"] / ref_side["tokens_per_s"]}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        ours_tps, torch_tps = result["read_jax_tokens_per_s"], result["torch_tokens_per_s"]
        print(f"read_jax {ours_tps:9.1f} tok/s   (median of {args.repeats}; first call {first_call:.2f}s)")
        print(f"torch    {torch_tps:9.1f} tok/s   ({args.threads} threads)")
        print(f"ratio    {ours_tps / torch_tps:9.2f}x   tokens identical: {identical}")
        f = result["weight_stream_floor"]
        print(f"floor    {f['tokens_per_s_ceiling']:9.1f} tok/s   (streaming {f['weight_bytes_per_step'] / 1e6:.1f} MB of "
              f"weights per step at {f['gb_per_s']:.1f} GB/s; ratio ceiling {f['ratio_ceiling']:.2f}x)")
    return 0 if identical else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
