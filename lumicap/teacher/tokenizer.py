"""GPT-2's byte-level BPE tokenizer, read with the ``tokenizers`` library.

Accepted: a ``tokenizer.json`` file, or a folder holding ``tokenizer.json`` or the older pair
``vocab.json`` + ``merges.txt`` (the ``openai-community/gpt2`` repository has all three).
``train_tiny_tokenizer`` builds a small byte-level BPE offline for tests and tiny teachers.
"""

from __future__ import annotations

from pathlib import Path

from lumicap.errors import WeightsError

END_OF_TEXT = "<|endoftext|>"


class CaptionTokenizer:
    """Text <-> GPT-2 token ids; knows ClipCap's stop token ('.')."""

    def __init__(self, backend, source: str):
        self.backend = backend
        self.source = source
        stop = backend.encode(".").ids
        if not stop:
            raise WeightsError(f"{source}: the tokenizer cannot encode '.', the caption stop token")
        self.stop_token_id = stop[0]
        self.vocab_size = backend.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text).ids

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids if 0 <= int(i) < self.vocab_size]
        return self.backend.decode(ids).strip()


def load_tokenizer(path: str | Path) -> CaptionTokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    path = Path(path)
    try:
        if path.is_file():
            return CaptionTokenizer(Tokenizer.from_file(str(path)), str(path))
        if (path / "tokenizer.json").is_file():
            return CaptionTokenizer(Tokenizer.from_file(str(path / "tokenizer.json")), str(path))
        if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            backend = Tokenizer(models.BPE.from_file(str(path / "vocab.json"), str(path / "merges.txt")))
            backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            backend.decoder = decoders.ByteLevel()
            return CaptionTokenizer(backend, str(path))
    except WeightsError:
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path}: not a readable GPT-2 tokenizer ({text})") from None
    raise WeightsError(f"{path}: no tokenizer.json (or vocab.json + merges.txt) found")


# A few caption-like sentences: enough for a byte-level BPE to learn common merges offline.
_TINY_CORPUS = [
    "A man riding a bike down a street.",
    "A woman sitting on a bench in a park.",
    "A cat laying on top of a wooden table.",
    "A dark room with a bed and a lamp.",
    "A kitchen with a stove, a sink and a window.",
    "Two people standing next to a red car.",
    "A bowl of fruit on a table near a wall.",
    "A living room with a couch and a television.",
    "A group of people walking on a city street at night.",
    "A dog running across a green field.",
    "A shelf full of books and toys.",
    "A close up of a plate of food.",
]


def train_tiny_tokenizer(directory: str | Path, vocab_size: int = 320) -> Path:
    """Train a byte-level BPE on a built-in caption corpus; writes tokenizer.json, vocab.json, merges.txt."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_TINY_CORPUS * 4, trainer)
    backend.save(str(directory / "tokenizer.json"))
    backend.model.save(str(directory))
    return directory
