"""Caption decoding against references written here from ClipCap's description of its two decoders."""

from __future__ import annotations

import pytest
import torch

from lumicap.teacher import ClipCapTeacher, save_tiny_teacher


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return ClipCapTeacher.from_pretrained(save_tiny_teacher(tmp_path_factory.mktemp("captions"), "mlp", seed=11))


def images(seed=0):
    return torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(seed))


def _next_logits(teacher, embeds):
    logits = teacher.gpt(inputs_embeds=embeds).logits[0, -1].float()
    return logits[: teacher.tokenizer.vocab_size]


def reference_greedy(teacher, prefix, max_tokens=67, top_p=0.8):
    """ClipCap's generate2: full recompute each step, top-p filter, arg-max, stop after '.'."""
    tokens, embeds = [], prefix
    for _ in range(max_tokens):
        logits = _next_logits(teacher, embeds)
        ordered, order = torch.sort(logits, descending=True)
        cumulative = torch.cumsum(torch.softmax(ordered, dim=-1), dim=-1)
        remove = cumulative > top_p
        remove[1:] = remove[:-1].clone()
        remove[0] = False
        logits[order[remove]] = float("-inf")
        token = int(logits.argmax())
        tokens.append(token)
        if token == teacher.tokenizer.stop_token_id:
            break
        embeds = torch.cat([embeds, teacher.token_embeddings(torch.tensor([[token]]))], dim=1)
    return tokens


def reference_beam(teacher, prefix, width=5, max_tokens=67):
    """Beam search as described: keep the `width` best hypotheses by (sum of log-probs) / length; a
    hypothesis that emitted '.' is finished and competes with its score frozen."""
    stop = teacher.tokenizer.stop_token_id

    def expand(tokens):
        embeds = torch.cat([prefix, teacher.token_embeddings(torch.tensor([tokens]))], dim=1) if tokens else prefix
        return torch.log_softmax(_next_logits(teacher, embeds), dim=-1).tolist()

    beams = []
    first = expand([])
    for token in sorted(range(len(first)), key=lambda t: -first[t])[:width]:
        beams.append((first[token], [token], token == stop))
    for _ in range(max_tokens - 1):
        if all(done for _, _, done in beams):
            break
        candidates = []
        for total, tokens, done in beams:
            if done:
                candidates.append((total, tokens, True))
                continue
            log_probs = expand(tokens)
            candidates += [(total + lp, tokens + [t], t == stop) for t, lp in enumerate(log_probs)]
        candidates.sort(key=lambda c: -c[0] / len(c[1]))
        beams = candidates[:width]
    return max(beams, key=lambda c: c[0] / len(c[1]))[1]


def test_greedy_matches_clipcap_generate2(teacher):
    x = images(1)
    with torch.no_grad():
        prefix = teacher.prefix_embeddings(teacher.clip_embedding(x))
        expected = [reference_greedy(teacher, prefix[i : i + 1], max_tokens=20) for i in range(2)]
    assert teacher.caption_tokens(x, max_tokens=20) == expected
    assert teacher.caption(x, max_tokens=20) == [teacher.tokenizer.decode(row) for row in expected]


def test_beam_search_matches_described_algorithm(teacher):
    x = images(2)[:1]
    with torch.no_grad():
        prefix = teacher.prefix_embeddings(teacher.clip_embedding(x))
        expected = reference_beam(teacher, prefix, max_tokens=8)
    assert teacher.caption_tokens(x, beam=True, max_tokens=8) == [expected]


def test_beam_of_width_one_is_greedy(teacher):
    x = images(3)
    assert teacher.caption_tokens(x, beam=True, beam_size=1, max_tokens=12) == teacher.caption_tokens(x, max_tokens=12)


def test_decoding_stops_at_the_period_and_keeps_it(tmp_path):
    teacher = ClipCapTeacher.from_pretrained(save_tiny_teacher(tmp_path, "mlp", seed=11))
    stop = teacher.tokenizer.stop_token_id
    with torch.no_grad():
        # Push the final hidden state far along the '.' embedding: '.' becomes nearly certain at once.
        teacher.gpt.transformer.ln_f.bias.copy_(2000.0 * teacher.gpt.transformer.wte.weight[stop])
    x = images(4)
    assert teacher.caption_tokens(x) == [[stop], [stop]]
    assert teacher.caption_tokens(x, beam=True) == [[stop], [stop]]
    assert teacher.caption(x[:1]) == ["."]


def test_caption_length_is_bounded(teacher):
    rows = teacher.caption_tokens(images(5), max_tokens=3)
    assert all(1 <= len(row) <= 3 for row in rows)
