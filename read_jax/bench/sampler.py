"""Benchmark: greedy generation tokens/s of `read_jax.sampling.generate` vs transformers `generate`.

Both sides run the same random Llama (weights saved by torch with ``save_pretrained`` and
loaded with `load_hf`, so they are identical) on this machine's CPU cores in one process:
batch 8, prompts of 32 tokens, 128 new tokens, no eos (both sides generate the full length).
torch gets ``torch.set_num_threads(<threads>)`` (default: the machine's core count); XLA uses
the same cores.  Compile time (first call) is reported separately from the timed repeats.

    read-jax bench sampler [--json] [--repeats 5] [--batch 8] [--prompt-len 32] [--new-tokens 128]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="read-jax bench sampler")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--topk-logprobs", type=int, default=0, help="also capture the top-k (default off)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import jax
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    import flax

    from read_jax.models import load_hf
    from read_jax.sampling import generate

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

    # ---- read_jax
    def run_jax():
        return generate(model, prompts.tolist(), max_new_tokens=n, temperature=0.0, eos_id=[],
                        topk_logprobs=args.topk_logprobs)

    t0 = time.perf_counter()
    ours = run_jax()
    first_call = time.perf_counter() - t0
    jax_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ours = run_jax()
        jax_times.append(time.perf_counter() - t0)

    # ---- transformers
    ids = torch.as_tensor(prompts, dtype=torch.long)
    attn = torch.ones_like(ids)

    def run_torch():
        with torch.inference_mode():
            return torch_model.generate(input_ids=ids, attention_mask=attn, do_sample=False, max_new_tokens=n,
                                        min_new_tokens=n, pad_token_id=0, eos_token_id=None)

    t0 = time.perf_counter()
    ref = run_torch()
    torch_first = time.perf_counter() - t0
    torch_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ref = run_torch()
        torch_times.append(time.perf_counter() - t0)

    ref_tokens = ref[:, args.prompt_len:].numpy()
    our_tokens = np.asarray(ours.tokens)
    assert our_tokens.shape == ref_tokens.shape == (b, n), (our_tokens.shape, ref_tokens.shape)
    identical = bool((our_tokens == ref_tokens).all())
    # rows agree up to the first disagreement (a float near-tie can flip one argmax; everything after differs)
    agree = [int(np.argmin(np.append(our_tokens[i] == ref_tokens[i], False))) for i in range(b)]

    ours_tps = b * n / statistics.median(jax_times)
    torch_tps = b * n / statistics.median(torch_times)
    result = {
        "read_jax_tokens_per_s": ours_tps,
        "torch_tokens_per_s": torch_tps,
        "ratio": ours_tps / torch_tps,
        "read_jax_seconds": _stats(jax_times),
        "torch_seconds": _stats(torch_times),
        "read_jax_tokens_per_s_range": {k: b * n / v for k, v in _stats(jax_times).items()},
        "torch_tokens_per_s_range": {k: b * n / v for k, v in _stats(torch_times).items()},
        "read_jax_first_call_seconds": first_call,
        "read_jax_compile_seconds_estimate": first_call - statistics.median(jax_times),
        "torch_first_call_seconds": torch_first,
        "tokens_identical": identical,
        "rows_agreeing_prefix": agree,
        "config": {**MODEL, "batch": b, "prompt_len": args.prompt_len, "new_tokens": n, "dtype": "float32",
                   "decoding": "greedy, no eos", "topk_logprobs": args.topk_logprobs, "repeats": args.repeats,
                   "torch_threads": torch.get_num_threads(), "torch_attn": torch_model.config._attn_implementation},
        "versions": {"jax": jax.__version__, "flax": flax.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version()},
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "jax_backend": jax.default_backend(), "jax_devices": len(jax.devices())},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"read_jax {ours_tps:9.1f} tok/s   (median of {args.repeats}; first call {first_call:.2f}s)")
        print(f"torch    {torch_tps:9.1f} tok/s   ({torch.get_num_threads()} threads)")
        print(f"ratio    {ours_tps / torch_tps:9.2f}x   tokens identical: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
