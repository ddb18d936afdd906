"""Tokenizers load from a local directory; prompts go through the chat template when there is one."""

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from read_jax.errors import CheckpointFormatError
from read_jax.models import encode_prompt, load_tokenizer

CHAT = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"


def _save_tokenizer(path, chat_template=None):
    words = ["<pad>", "<s>", "</s>", "<user>", "<assistant>", "hello", "world", "<unk>"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", additional_special_tokens=["<user>", "<assistant>"])
    if chat_template:
        fast.chat_template = chat_template
    fast.save_pretrained(str(path))
    return fast


def test_chat_template_is_applied(tmp_path):
    _save_tokenizer(tmp_path, CHAT)
    tok = load_tokenizer(tmp_path)
    ids = encode_prompt(tok, "hello")
    assert tok.convert_ids_to_tokens(ids) == ["<user>", "hello", "</s>", "<assistant>"]


def test_plain_encoding_without_template(tmp_path):
    _save_tokenizer(tmp_path)
    tok = load_tokenizer(tmp_path)
    ids = encode_prompt(tok, "hello")
    assert "hello" in tok.convert_ids_to_tokens(ids) and "<assistant>" not in tok.convert_ids_to_tokens(ids)


def test_missing_tokenizer_dir_is_one_clear_error(tmp_path):
    with pytest.raises(CheckpointFormatError, match="tokenizer directory not found"):
        load_tokenizer(tmp_path / "nope")
