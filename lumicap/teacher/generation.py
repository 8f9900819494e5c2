"""Caption decoding from a GPT-2 prefix, as ClipCap does it.

- ``greedy_decode``: ClipCap's default ``generate2``: at each step a top-p (0.8) filter and then the
  arg-max. The most probable token always survives a top-p filter, so the pair is the arg-max; it is
  computed directly. At most 67 tokens; a sequence ends with (and includes) the '.' token. Batched,
  with GPT-2's key/value cache.
- ``beam_decode``: ClipCap's ``generate_beam``: width 5, scores are summed log-probabilities divided by
  the sequence length, a beam that produced '.' is frozen (its later steps add nothing and do not
  lengthen it), and the best length-normalised beam wins. One image at a time, beams batched.

Only token ids the tokenizer knows are ever chosen (a model's vocabulary may be padded beyond it).
"""

from __future__ import annotations

import inspect

import torch


def _cache_argument(gpt) -> str:
    # transformers renamed GPT-2's "past_key_values" argument/output to "cache" (5.2x); accept both.
    return "cache" if "cache" in inspect.signature(gpt.forward).parameters else "past_key_values"


def _cache_of(output):
    cache = output.get("cache")
    return cache if cache is not None else output.get("past_key_values")


def _restrict(logits: torch.Tensor, vocab_size: int) -> torch.Tensor:
    if logits.shape[-1] > vocab_size:
        logits = logits.clone()
        logits[..., vocab_size:] = float("-inf")
    return logits


@torch.no_grad()
def greedy_decode(
    gpt, prefix: torch.Tensor, stop_token_id: int, vocab_size: int, max_tokens: int = 67
) -> list[list[int]]:
    """Token ids per row of ``prefix`` (B, P, E), each ending at the first stop token (kept) or at ``max_tokens``."""
    batch = prefix.shape[0]
    wte = gpt.get_input_embeddings()
    cache_name = _cache_argument(gpt)
    out = gpt(inputs_embeds=prefix, use_cache=True)
    done = torch.zeros(batch, dtype=torch.bool, device=prefix.device)
    steps = []
    for _ in range(max_tokens):
        next_tokens = _restrict(out.logits[:, -1].float(), vocab_size).argmax(dim=-1)
        steps.append(next_tokens)
        done |= next_tokens == stop_token_id
        if bool(done.all()):
            break
        embeds = wte(next_tokens).unsqueeze(1).to(prefix.dtype)
        out = gpt(inputs_embeds=embeds, use_cache=True, **{cache_name: _cache_of(out)})
    tokens = torch.stack(steps, dim=1).tolist()
    return [_cut_at_stop(row, stop_token_id) for row in tokens]


def _cut_at_stop(row: list[int], stop_token_id: int) -> list[int]:
    return row[: row.index(stop_token_id) + 1] if stop_token_id in row else row


@torch.no_grad()
def beam_decode(
    gpt, prefix: torch.Tensor, stop_token_id: int, vocab_size: int, beam_size: int = 5, max_tokens: int = 67
) -> list[list[int]]:
    """Best beam's token ids for each row of ``prefix`` (B, P, E)."""
    return [
        _beam_one(gpt, prefix[i : i + 1], stop_token_id, vocab_size, beam_size, max_tokens)
        for i in range(prefix.shape[0])
    ]


def _beam_one(gpt, prefix, stop_token_id, vocab_size, beam_size, max_tokens) -> list[int]:
    wte = gpt.get_input_embeddings()
    device = prefix.device
    beam_size = min(beam_size, vocab_size)
    log_probs = torch.log_softmax(_restrict(gpt(inputs_embeds=prefix).logits[:, -1].float(), vocab_size), dim=-1)
    scores, first = log_probs[0].topk(beam_size)
    tokens = first.unsqueeze(1)  # (beam, t)
    lengths = torch.ones(beam_size, device=device)
    stopped = first == stop_token_id
    sequence = torch.cat([prefix.expand(beam_size, -1, -1), wte(first).unsqueeze(1).to(prefix.dtype)], dim=1)
    for _ in range(max_tokens - 1):
        if bool(stopped.all()):
            break
        log_probs = torch.log_softmax(_restrict(gpt(inputs_embeds=sequence).logits[:, -1].float(), vocab_size), dim=-1)
        # A finished beam may only "continue" with a placeholder (id 0) that costs nothing and is cut off.
        log_probs[stopped] = float("-inf")
        log_probs[stopped, 0] = 0.0
        lengths = lengths + (~stopped).float()
        average = (scores.unsqueeze(1) + log_probs) / lengths.unsqueeze(1)
        best, flat = average.view(-1).topk(beam_size)
        source, token = flat // log_probs.shape[1], flat % log_probs.shape[1]
        lengths = lengths[source]
        scores = best * lengths
        stopped = stopped[source] | (token == stop_token_id)
        tokens = torch.cat([tokens[source], token.unsqueeze(1)], dim=1)
        sequence = torch.cat([sequence[source], wte(token).unsqueeze(1).to(prefix.dtype)], dim=1)
    winner = int((scores / lengths).argmax())
    return tokens[winner, : int(lengths[winner])].tolist()
