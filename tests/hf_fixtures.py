"""Tiny random Hugging Face models built locally (no network), for parity tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY = dict(vocab_size=96, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)

# name -> (model_type, extra config kwargs)
FAMILIES: dict[str, tuple[str, dict]] = {
    "llama": ("llama", {}),
    "llama3_rope": ("llama", {"rope_parameters": {
        "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 16}}),
    "mistral": ("mistral", {"sliding_window": 7}),
    "qwen2_tied": ("qwen2", {"tie_word_embeddings": True}),
    "qwen3": ("qwen3", {"head_dim": 24}),
}


def make_hf_model(name: str, out_dir: Path, seed: int = 0, **overrides):
    """Build a random tiny transformers model of a family, save it to ``out_dir``, return it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    model_type, extra = FAMILIES[name]
    kwargs = {**TINY, **extra, **overrides}
    config = AutoConfig.for_model(model_type, **kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():  # non-trivial norms and biases, so their mapping is really tested
        for n, p in model.named_parameters():
            if n.endswith("norm.weight") or n.endswith("layernorm.weight") or n.endswith(".bias"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p) if "norm" in n else 0.1 * torch.randn_like(p))
    model.save_pretrained(str(out_dir))
    return model


def torch_logits(model, ids: np.ndarray, mask: np.ndarray | None = None,
                 positions: np.ndarray | None = None) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(
            input_ids=torch.as_tensor(ids, dtype=torch.long),
            attention_mask=None if mask is None else torch.as_tensor(mask, dtype=torch.long),
            position_ids=None if positions is None else torch.as_tensor(positions, dtype=torch.long),
        )
    return out.logits.float().numpy()


def left_padded_batch(rng: np.random.Generator, vocab: int, lengths: list[int]):
    """ids, mask, positions for a left-padded batch (pad id 0, positions = valid tokens before)."""
    t = max(lengths)
    ids = np.zeros((len(lengths), t), np.int32)
    mask = np.zeros((len(lengths), t), np.int32)
    for i, n in enumerate(lengths):
        ids[i, t - n:] = rng.integers(1, vocab, n)
        mask[i, t - n:] = 1
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    return ids, mask, positions
