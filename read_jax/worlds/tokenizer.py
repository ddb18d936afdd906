"""Character-level tokenizer for the synthetic world, built in-process (no downloads).

A `transformers.PreTrainedTokenizerFast` around a `tokenizers` BPE model with no
merges (so every character is one token) and a `Fuse` decoder.  Vocabulary: the
special tokens `<pad>`=0, `<bos>`=1, `<eos>`=2, `<unk>`=3, then the 95 printable
ASCII characters and newline: 100 ids, fixed, covering everything the world emits.
`save_pretrained(dir)` + `AutoTokenizer.from_pretrained(dir)` round-trips offline.

Training text of one example: `<bos> prompt SEP answer <eos>`; the loss mask is 1 on
the answer tokens and on `<eos>` (`encode_example`).
"""

from __future__ import annotations

import string
from typing import Sequence

import numpy as np

from read_jax.capabilities.registry import Example
from read_jax.errors import ReadJaxError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
CHARSET = "".join(chr(c) for c in range(32, 127)) + "\n"
SEP = "\n"  # between prompt and answer; no world prompt contains a newline
CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


def char_vocab() -> dict[str, int]:
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for ch in CHARSET:
        vocab[ch] = len(vocab)
    return vocab


def build_tokenizer(model_max_length: int = 256):
    """A fresh character-level `PreTrainedTokenizerFast` (adds `<bos>` by default)."""
    from tokenizers import Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    vocab = char_vocab()
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK, ignore_merges=True))
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def in_vocab(text: str) -> bool:
    return all(ch in CHARSET for ch in text)


def encode_example(tokenizer, example: Example | tuple[str, str], sep: str = SEP) -> tuple[list[int], list[int]]:
    """(ids, loss_mask) for `<bos> prompt sep answer <eos>`; mask = 1 on answer + eos."""
    prompt, answer = (example.prompt, example.answer) if isinstance(example, Example) else example
    p = tokenizer(prompt + sep, add_special_tokens=False)["input_ids"]
    a = tokenizer(answer, add_special_tokens=False)["input_ids"]
    ids = [tokenizer.bos_token_id, *p, *a, tokenizer.eos_token_id]
    mask = [0] * (1 + len(p)) + [1] * (len(a) + 1)
    return ids, mask


def encode_prompt(tokenizer, prompt: str, sep: str = SEP) -> list[int]:
    """Ids to feed a model that should generate the answer: `<bos> prompt sep`."""
    return [tokenizer.bos_token_id, *tokenizer(prompt + sep, add_special_tokens=False)["input_ids"]]


def pack_batch(
    tokenizer, examples: Sequence[Example], max_len: int, sep: str = SEP, pad_to: int | None = None
) -> dict[str, np.ndarray]:
    """Right-padded int32 arrays: input_ids, loss_mask, attention_mask ([B, L]).

    `loss_mask[t]` is 1 where token t is an answer (or eos) token: train a causal LM
    with logits[:, :-1] predicting input_ids[:, 1:] weighted by loss_mask[:, 1:].
    """
    rows = [encode_example(tokenizer, e, sep) for e in examples]
    length = pad_to or max(len(r[0]) for r in rows)
    if length > max_len or any(len(r[0]) > length for r in rows):
        raise ReadJaxError(f"an example is longer than max_len={max_len} ({max(len(r[0]) for r in rows)} tokens)")
    ids = np.full((len(rows), length), tokenizer.pad_token_id, dtype=np.int32)
    loss = np.zeros((len(rows), length), dtype=np.int32)
    att = np.zeros((len(rows), length), dtype=np.int32)
    for i, (r, m) in enumerate(rows):
        ids[i, : len(r)] = r
        loss[i, : len(m)] = m
        att[i, : len(r)] = 1
    return {"input_ids": ids, "loss_mask": loss, "attention_mask": att}
