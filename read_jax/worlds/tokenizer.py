"""Character-level tokenizer for the synthetic world, built in-process (no downloads).

A `transformers.PreTrainedTokenizerFast` around a `tokenizers` BPE model with no
merges (so every character is one token) and a `Fuse` decoder.  Vocabulary: the
special tokens `<pad>`=0, `<bos>`=1, `<eos>`=2, `<unk>`=3, then the 95 printable
ASCII characters and newline: 100 ids, fixed, covering everything the world emits.
`save_pretrained(dir)` + `AutoTokenizer.from_pretrained(dir)` round-trips offline.

Training text of one example: `<bos> prompt SEP answer <eos>`, with the loss on the answer
tokens and `<eos>` (`encode_example`).
"""

from __future__ import annotations

from read_jax.capabilities.registry import Example
from read_jax.distill.batching import TokenExample

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


def encode_example(tokenizer, example: Example | tuple[str, str], sep: str = SEP) -> TokenExample:
    """Token ids for training: prompt `<bos> prompt sep`, response `answer <eos>` (the loss covers the
    response; `read_jax.distill.batching.collate` packs these into batches)."""
    prompt, answer = (example.prompt, example.answer) if isinstance(example, Example) else example
    return TokenExample(encode_world_prompt(tokenizer, prompt, sep),
                        [*tokenizer(answer, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id])


def encode_world_prompt(tokenizer, prompt: str, sep: str = SEP) -> list[int]:
    """Ids to feed a world model that should generate the answer: `<bos> prompt sep` (the world's
    own format; a Hugging Face model's prompts go through its chat template, `models.encode_prompt`)."""
    return [tokenizer.bos_token_id, *tokenizer(prompt + sep, add_special_tokens=False)["input_ids"]]
