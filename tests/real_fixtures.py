"""A tiny real-path model pair built locally: a byte-level BPE tokenizer with a ChatML chat
template, trained here on a few sentences, and random Llama teacher / student directories that
share it (no network, seconds to build)."""

from __future__ import annotations

from pathlib import Path

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tokenizer(chat_template: str | None = CHATML, vocab_size: int = 320):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["What is the capital of France? Answer with one word.", "def add(a, b):\n    return a + b",
              "Compute 12 * 7 and give the number.", "Call the tool get_weather with city Paris.",
              "Translate 'house' into Spanish: casa.", "Read the document and answer the question."] * 4
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token="<|im_start|>", unk_token="<|endoftext|>")
    if chat_template:
        fast.chat_template = chat_template
    return fast


def make_real_pair(root: Path, chat_template: str | None = CHATML, student_vocab: int | None = None,
                   teacher_layers: int = 2) -> tuple[Path, Path]:
    """(teacher_dir, student_dir): random tiny Llamas saved with transformers plus the tokenizer."""
    from hf_fixtures import make_hf_model

    tok = build_tokenizer(chat_template)
    vocab = len(tok)
    teacher, student = root / "teacher", root / "student"
    make_hf_model("llama", teacher, seed=0, vocab_size=vocab, num_hidden_layers=teacher_layers,
                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, max_position_embeddings=4096)
    make_hf_model("llama", student, seed=1, vocab_size=student_vocab or vocab, num_hidden_layers=1,
                  hidden_size=32, intermediate_size=64, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id, max_position_embeddings=4096)
    for d in (teacher, student):
        tok.save_pretrained(str(d))
    return teacher, student
