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

With ``--model SPEC`` (any `read_jax.models.resolve` spec, e.g. ``smollm2-135m-instruct``)
both sides instead load the same real checkpoint from its (converted, float32) Hugging Face
directory, and the prompts are realistic text inside the chat template (`text_prompts`).
Defaults change to batches 8 and 32, 64 prompt tokens, 3 rounds and no 1-thread torch
reference (a 135M model at batch 32 takes ~30 s per torch round on 2 cores).  Over 30
layers float32 differences can flip a near-tied argmax, after which a row's greedy
continuation differs; so instead of all tokens identical it requires >= 95 % of rows
identical and, for each differing row, both models' logit margins at the first differing
step within 1e-3 (`first_divergences`).

    read-jax bench sampler [--json] [--repeats 9] [--batch 8] [--prompt-len 32] [--new-tokens 128]
    read-jax bench sampler --model smollm2-135m-instruct [--batch 8 32] [--prompt-len 64]
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
    feature-major [in, batch] activation by every matrix the step reads, in the CPU decode
    layout with the compiler options the sampler's decode uses on this backend
    (`StackedWeights`: one product per projection group and the output head; not the
    embedding, which is gathered), one after the other, nothing else.

    With a batch of a few rows a decode step is bound by reading its weights, and its
    products form a dependency chain (each layer waits for the one before); this loop keeps
    both properties (every product's input depends, by a scalar, on the previous product's
    output, which also stops XLA hoisting them out of the loop), so its time per iteration is
    a floor the sampler's decode step does not beat.
    """
    import jax
    import jax.numpy as jnp

    from read_jax import backend
    from read_jax.models.decoder import StackedWeights

    platform = jax.default_backend()
    stacked = StackedWeights.of(model)
    mats = [*jax.tree.leaves(stacked.layers), stacked.head]  # all [out, in]
    dims = sorted({m.shape[1] for m in mats})

    def loop(mats, xs):
        def body(_, xs):
            total = jnp.zeros((), jnp.float32)
            for m in mats:
                total = total + jnp.sum(m @ (xs[dims.index(m.shape[1])] + 1e-9 * total))
            return tuple(x + 1e-9 * total for x in xs)
        return jax.lax.fori_loop(0, steps, body, xs)

    loop = jax.jit(loop, compiler_options=backend.decode_compiler_options(platform))
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


# Text the `--model` prompts are cut from (each row a different window, inside the chat template).
PASSAGE = (
    "The river rose slowly through the spring, and the town along its banks prepared as it always had: "
    "sandbags stacked by the bakery, boats pulled higher on the gravel, the school bell rung twice at noon. "
    "In the library a retired engineer explained to a group of children how a lock lifts a barge, why "
    "water finds its own level, and what a hydrograph shows when the snow melts in the mountains. "
    "Meanwhile, at the market, farmers compared the price of seed potatoes with last year's, argued about "
    "whether the new bridge would bring more visitors, and traded recipes for rhubarb pie and onion soup. "
    "A mathematics teacher set her class a puzzle: if the river rises four centimetres an hour and the wall "
    "is one metre twenty high, how long until the water reaches the top, and what changes if the rain stops? "
    "By evening the radio reported that the crest had passed upstream, the council thanked the volunteers, "
    "and the engineer wrote in his notebook that the old stone weir had once again done exactly its job. "
    "Later that week, a visiting historian gave a talk about the mills that once lined the banks, the "
    "families who ran them, the floods of the past two centuries, and the maps that recorded each one."
)


def text_prompts(tokenizer, rows: int, length: int) -> np.ndarray:
    """``rows`` prompts of exactly ``length`` tokens: the chat template around a window of
    `PASSAGE` (row i starts i windows-strides further into it), so the model sees realistic
    text and the workload is the same for every row."""
    from read_jax.models import encode_prompt

    a, b = encode_prompt(tokenizer, "alpha"), encode_prompt(tokenizer, "omega")
    pre = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    post = next(i for i, (x, y) in enumerate(zip(a[::-1], b[::-1])) if x != y)
    prefix, suffix = a[:pre], a[len(a) - post:]
    window = length - len(prefix) - len(suffix)
    if window < 1:
        raise ValueError(f"--prompt-len {length} leaves no room inside the {length - window}-token chat template")
    body = list(tokenizer(PASSAGE, add_special_tokens=False)["input_ids"])
    stride = 7
    while len(body) < stride * (rows - 1) + window:
        body = body + body
    return np.asarray([prefix + body[i * stride:i * stride + window] + suffix for i in range(rows)])


def first_divergences(model, torch_model, prompts: np.ndarray, ours: np.ndarray, ref: np.ndarray,
                      tie: float = 1e-3) -> list[dict]:
    """For each row where the greedy tokens differ: the first differing step, and each model's
    logit margin there between its own choice and the other's (full forward passes over
    prompt + the common prefix).  Both margins within ``tie``: a float near-tie, not a bug."""
    import jax.numpy as jnp
    import torch

    out = []
    for i in np.flatnonzero((ours != ref).any(axis=1)):
        j = int(np.argmax(ours[i] != ref[i]))
        seq = np.concatenate([prompts[i], ours[i, :j]])[None].astype(np.int32)
        mine = np.asarray(model(jnp.asarray(seq)))[0, -1]
        with torch.no_grad():
            theirs = torch_model(input_ids=torch.as_tensor(seq, dtype=torch.long)).logits[0, -1].float().numpy()
        a, c = int(ours[i, j]), int(ref[i, j])
        m_ours, m_theirs = float(mine[a] - mine[c]), float(theirs[c] - theirs[a])
        out.append({"row": int(i), "step": j, "read_jax_token": a, "torch_token": c,
                    "read_jax_margin": m_ours, "torch_margin": m_theirs,
                    "near_tie": max(abs(m_ours), abs(m_theirs)) <= tie})
    return out


def _setup(args):
    """(torch model, our model, prompt rows, model description) for the default random Llama
    or, with ``--model``, a real checkpoint (both sides loaded from the same HF directory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from read_jax.models import load_hf

    rows = max(args.batch)
    rng = np.random.default_rng(args.seed)
    if args.model is None:
        torch.manual_seed(args.seed)
        hf_config = AutoConfig.for_model("llama", **MODEL, bos_token_id=None, eos_token_id=None, pad_token_id=0)
        torch_model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32).eval()
        torch_model.generation_config.eos_token_id = None
        with tempfile.TemporaryDirectory() as tmp:
            torch_model.save_pretrained(tmp)
            model, _ = load_hf(tmp)
        return torch_model, model, rng.integers(1, MODEL["vocab_size"], (rows, args.prompt_len)), dict(MODEL)

    from read_jax.models import load_tokenizer
    from read_jax.models.resolve import resolve_model

    hf_dir = resolve_model(args.model)
    torch_model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    torch_model.generation_config.eos_token_id = None
    model, config = load_hf(hf_dir)
    try:
        prompts = text_prompts(load_tokenizer(hf_dir), rows, args.prompt_len)
    except Exception:  # no tokenizer in the directory: random ids
        prompts = rng.integers(1, config.vocab_size, (rows, args.prompt_len))
    info = {"model": args.model, "hf_dir": str(hf_dir), "vocab_size": config.vocab_size,
            "hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size,
            "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": config.num_attention_heads,
            "num_key_value_heads": config.num_key_value_heads, "tie_word_embeddings": config.tie_word_embeddings,
            "num_params": config.num_params()}
    return torch_model, model, prompts, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="read-jax bench sampler")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--model", default=None,
                        help="a model spec (e.g. smollm2-135m-instruct; see read_jax.models.resolve) instead of "
                             "the random Llama; defaults then become --batch 8 32 --prompt-len 64 --repeats 3 "
                             "--torch-reference-threads 0")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved rounds per side (this 2-core VM varies ~25 %% between rounds; default 9)")
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="batch size(s) (default 8)")
    parser.add_argument("--prompt-len", type=int, default=None, help="default 32")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--topk-logprobs", type=int, default=0, help="also capture the top-k (default off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-reference-threads", type=int, default=None,
                        help="also time torch with this many threads, as a reference (0 = skip; default 1); on a "
                             "loaded machine torch's multi-threaded kernels degrade far more than single-threaded ones")
    args = parser.parse_args(argv)
    real = args.model is not None
    defaults = dict(repeats=3, batch=[8, 32], prompt_len=64, torch_reference_threads=0) if real else \
        dict(repeats=9, batch=[8], prompt_len=32, torch_reference_threads=1)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    import torch

    torch.set_num_threads(args.threads)
    torch_model, model, prompts, model_info = _setup(args)
    results, status = {}, 0
    for b in args.batch:
        result = _measure(model, torch_model, prompts[:b], args, model_info)
        if real:
            ours, ref = result.pop("_tokens")
            rows_identical = float((ours == ref).all(axis=1).mean())
            divergences = first_divergences(model, torch_model, prompts[:b], ours, ref)
            result["rows_identical_fraction"] = rows_identical
            result["divergences"] = divergences
            ok = rows_identical >= 0.95 and all(d["near_tie"] for d in divergences)
        else:
            result.pop("_tokens")
            ok = result["tokens_identical"]
        status |= 0 if ok else 1
        results[b] = result
        if not args.json:
            _print(result, args, header=f"batch {b}" if real or len(args.batch) > 1 else None)
    if args.json:
        print(json.dumps(results[args.batch[0]] if len(results) == 1 else
                         {"batches": {str(b): r for b, r in results.items()}}, indent=2))
    return status


def _print(result: dict, args, header: str | None) -> None:
    if header:
        print(f"-- {header}")
    ours_tps, torch_tps = result["read_jax_tokens_per_s"], result["torch_tokens_per_s"]
    first_call = result["read_jax_first_call_seconds"]
    print(f"read_jax {ours_tps:9.1f} tok/s   (median of {args.repeats}; first call {first_call:.2f}s)")
    print(f"torch    {torch_tps:9.1f} tok/s   ({args.threads} threads)")
    print(f"ratio    {ours_tps / torch_tps:9.2f}x   tokens identical: {result['tokens_identical']}")
    f = result["weight_stream_floor"]
    print(f"floor    {f['tokens_per_s_ceiling']:9.1f} tok/s   (streaming {f['weight_bytes_per_step'] / 1e6:.1f} MB of "
          f"weights per step at {f['gb_per_s']:.1f} GB/s; ratio ceiling {f['ratio_ceiling']:.2f}x)")
    if "rows_identical_fraction" in result:
        print(f"rows     {result['rows_identical_fraction']:9.2%}   with identical greedy tokens")
        for d in result["divergences"]:
            print(f"  row {d['row']} differs from step {d['step']}: read_jax {d['read_jax_token']} / torch "
                  f"{d['torch_token']}, margins {d['read_jax_margin']:.2e} / {d['torch_margin']:.2e}"
                  f"{' (near-tie)' if d['near_tie'] else ''}")


def _measure(model, torch_model, prompts: np.ndarray, args, model_info: dict) -> dict:
    """Interleaved timed rounds of both sides on one prompt batch -> the result dict."""
    import jax
    import torch
    import transformers

    import flax

    from read_jax.sampling import Sampler

    b, n = len(prompts), args.new_tokens
    prompt_len = prompts.shape[1]
    pad_id = torch_model.config.pad_token_id if torch_model.config.pad_token_id is not None else 0
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
                                        min_new_tokens=n, pad_token_id=pad_id, eos_token_id=None)

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

    ref_tokens = ref[:, prompt_len:].numpy()
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
        "config": {**model_info, "batch": b, "prompt_len": prompt_len, "new_tokens": n, "dtype": "float32",
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
    result["_tokens"] = (our_tokens, ref_tokens)
    return result

if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
