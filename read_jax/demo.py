"""`read-jax demo`: the main job on the embedded default.

Interim version (the ReAD loop is not wired in yet): the smallest honest thing the
package does end to end — build a random tiny Llama-family decoder, export it as a
Hugging Face checkpoint, reload it in transformers (PyTorch) and in read_jax, and print
the largest logit difference of each against the original.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="read-jax demo")
    parser.add_argument("--out", type=Path, default=None, help="where to write the exported checkpoint")
    parser.add_argument("--quick", action="store_true", help="accepted for forward compatibility")
    args = parser.parse_args(argv)

    import jax.numpy as jnp

    from read_jax.models import DecoderConfig, init_decoder, load_hf, save_hf

    print("read-jax demo (interim): the ReAD loop is not wired in yet; this exports a random tiny decoder,\n"
          "reloads it in transformers and in read_jax, and reports logit parity.")
    t0 = time.perf_counter()
    config = DecoderConfig(vocab_size=512, hidden_size=128, intermediate_size=344, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=32, eos_token_id=1)
    model = init_decoder(config, seed=0)
    out = args.out or Path(tempfile.mkdtemp(prefix="read_jax_demo_"))
    save_hf(model, out)
    ids = np.random.default_rng(0).integers(0, config.vocab_size, (2, 24)).astype(np.int32)
    ours = np.asarray(model(jnp.asarray(ids)))
    reloaded, _ = load_hf(out)
    delta_jax = float(np.abs(np.asarray(reloaded(jnp.asarray(ids))) - ours).max())
    line = f"exported {config.num_params():,} parameters to {out}\nload_hf round trip: max |Δlogit| = {delta_jax:.2e}"
    try:
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError:
        print(line + "\ntransformers reload skipped: torch is not installed (pip install -e '.[dev]')")
        return 0
    ref = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = ref(torch.as_tensor(ids, dtype=torch.long)).logits.numpy()
    print(line + f"\ntransformers reload:  max |Δlogit| = {float(np.abs(theirs - ours).max()):.2e}"
          f"\ndone in {time.perf_counter() - t0:.1f} s")
    return 0
