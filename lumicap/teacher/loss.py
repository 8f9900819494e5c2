"""Multimodal feature regularization (MFR): make the enhanced image look like the reference to a captioner.

A frozen ClipCap teacher sees the enhanced ``output`` and the normal-light ``target`` and the loss asks
their features to agree in three spaces::

    MFR = λ_clip · d(CLIP(output), CLIP(target))                        # image embedding (B, D)
        + λ_prefix · d(M(CLIP(output)), M(CLIP(target)))                # mapper prefix (B, P, E)
        + λ_gpt · mean_layers d(GPT_l([prefix_o; c]), GPT_l([prefix_t; c]))  # GPT-2 hidden states
        + λ_kl · KL(softmax(logits_t) || softmax(logits_o))             # optional, next-token

``d`` is L1, L2 (mean squared) or cosine distance. With ``normalize=True`` the L1/L2 distances are
divided by the reference's own feature scale (mean |f_t| or mean f_t², per sample, detached), so each
term is a relative error near 1 for unrelated images and the default weights (1, 1, 1) balance them;
cosine distance is scale-free already. GPT-2 features are the hidden states over the prefix positions
(``gpt_layers``: ``"last"`` = final hidden state after the last layer norm, ``"all"`` = the output of
every block, or a list of indices into transformers' ``hidden_states``, 0 = input embeddings).

``caption_conditioned=True``: the reference is captioned once per call (greedy, no gradient), the
caption tokens ``c`` are teacher-forced after *both* prefixes, and the GPT-2 term (and KL) covers the
prefix and caption positions (padding masked).

Guarantees: the teacher is frozen (no parameter requires grad, eval mode whatever ``train()`` says);
reference features never carry gradients; gradients reach only ``output``. A sample whose output equals
its reference bit for bit contributes exactly zero (the two passes may run through different kernels,
e.g. with and without autograd, so their features are not always bitwise equal). Any other difference
counts only where the teacher looks (``preprocess``):

- ``"crop"`` (the default, CLIP's own view): shorter side to the CLIP size, then the centre square. A
  change outside that square contributes exactly 0 and its pixels get no gradient: on a 1200 x 1800
  image 32.4 % of the pixels (the left and right bands, less the resize filter's reach) get no
  gradient from MFR.
- ``"tile"``: the whole image at its aspect ratio, in CLIP-sized tiles whose features are averaged;
  every pixel takes part. Use it for non-square images.
- ``"resize"``: the whole image squashed to a square; every pixel takes part, the aspect ratio does not.

Even where the teacher looks, a downscale cannot tell apart changes finer than its filter, so "differs
from the reference" does not always mean "positive loss". Features are compared in fp32, so the loss works
under autocast. The teacher needs no DDP wrapping: it has no trainable parameters and each rank computes
its own loss.

``fuse_passes``: run reference and output through the teacher as one batch (fewer kernel launches,
better on GPUs) instead of a no-grad reference pass plus an output pass (less arithmetic, better on
CPUs). ``None`` picks by device.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lumicap.names import FEATURE_DISTANCES as DISTANCES
from lumicap.names import PREPROCESS_MODES, FeatureDistance, GptLayerChoice, PreprocessMode
from lumicap.teacher.clipcap import ClipCapTeacher
_EPS = 1e-8


class MultimodalFeatureLoss(nn.Module):
    """``loss = mfr(output, target)``: the MFR term (module docstring), a scalar attached to ``output``'s graph.

    Usually built with ``MultimodalFeatureLoss.from_pretrained(name_or_path, ...)``, which loads the teacher.

    Args:
        teacher: a frozen ``ClipCapTeacher``.
        weights: (λ_clip, λ_prefix, λ_gpt), each >= 0; a zero weight skips the work of that term.
        distance: ``"l1"``, ``"l2"`` (mean squared) or ``"cosine"``, for all three terms.
        gpt_layers: ``"last"``, ``"all"`` or indices into GPT-2's hidden states (0 = input embeddings).
        preprocess: how an image becomes CLIP's square: ``"crop"`` (centre, CLIP's own view), ``"tile"``
            (the whole image in CLIP-sized tiles) or ``"resize"`` (squashed).
        normalize: divide L1/L2 distances by the reference's own feature scale (terms near 1 when unrelated).
        caption_conditioned: caption the reference (greedy, no gradient) and teacher-force the caption after
            both prefixes; the GPT-2 term then covers prefix and caption positions.
        kl_weight: λ_kl of the next-token KL term (0: off).
        max_caption_tokens: longest reference caption with ``caption_conditioned`` (ClipCap's 67).
        fuse_passes: reference and output through the teacher as one batch (True) or as a no-grad pass plus
            a graph pass (False); None: by device (fused on GPUs).
    """

    def __init__(
        self,
        teacher: ClipCapTeacher,
        weights: Sequence[float] = (1.0, 1.0, 1.0),
        distance: FeatureDistance = "l1",
        gpt_layers: GptLayerChoice | Sequence[int] = "last",
        preprocess: PreprocessMode = "crop",
        normalize: bool = True,
        caption_conditioned: bool = False,
        kl_weight: float = 0.0,
        max_caption_tokens: int = 67,
        fuse_passes: bool | None = None,
    ):
        super().__init__()
        weights = tuple(float(w) for w in weights)
        if len(weights) != 3 or any(w < 0 for w in weights):
            raise ValueError(f"weights must be three non-negative numbers (clip, prefix, gpt), got {weights}")
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
        if preprocess not in PREPROCESS_MODES:
            raise ValueError(f"preprocess must be one of {', '.join(PREPROCESS_MODES)}, got {preprocess!r}")
        if kl_weight < 0:
            raise ValueError(f"kl_weight must be non-negative, got {kl_weight}")
        self.teacher = teacher
        self.weights = weights
        self.distance = distance
        self.gpt_layers = _check_layers(gpt_layers, teacher.gpt.config.n_layer)
        self.preprocess = preprocess
        self.normalize = normalize
        self.caption_conditioned = caption_conditioned
        self.kl_weight = float(kl_weight)
        self.max_caption_tokens = int(max_caption_tokens)
        self.fuse_passes = fuse_passes
        self._last_terms: dict[str, torch.Tensor] = {}
        self.last_captions: list[str] = []

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike = "clipcap-coco",
        weights: Sequence[float] = (1.0, 1.0, 1.0),
        distance: FeatureDistance = "l1",
        gpt_layers: GptLayerChoice | Sequence[int] = "last",
        preprocess: PreprocessMode = "crop",
        normalize: bool = True,
        caption_conditioned: bool = False,
        kl_weight: float = 0.0,
        device: str | torch.device | None = None,
        **options,
    ) -> "MultimodalFeatureLoss":
        """Load a teacher (preset name or local teacher folder) and wrap it; see the module docstring.

        ``options``: ``max_caption_tokens``, ``fuse_passes``, and the loader's ``download``/``cache_dir``.
        """
        loader = {k: options.pop(k) for k in ("download", "cache_dir") if k in options}
        teacher = ClipCapTeacher.from_pretrained(name_or_path, device=device, **loader)
        return cls(
            teacher,
            weights=weights,
            distance=distance,
            gpt_layers=gpt_layers,
            preprocess=preprocess,
            normalize=normalize,
            caption_conditioned=caption_conditioned,
            kl_weight=kl_weight,
            **options,
        )

    def train(self, mode: bool = True) -> "MultimodalFeatureLoss":
        # The loss may follow the training loop's mode; the teacher inside never leaves eval mode.
        self.training = mode
        self.teacher.eval()
        return self

    @property
    def last_terms(self) -> dict[str, float]:
        """Unweighted terms of the last call (``mfr_clip``, ``mfr_prefix``, ``mfr_gpt``, ``mfr_kl``) as floats."""
        if not self._last_terms:
            return {}
        names = list(self._last_terms)
        values = torch.stack([self._last_terms[n].float() for n in names]).tolist()  # one device sync
        return dict(zip(names, values))

    @property
    def last_term_tensors(self) -> dict[str, torch.Tensor]:
        """The same terms as detached 0-d tensors: for loggers that avoid a device sync every step."""
        return dict(self._last_terms)

    # ------------------------------------------------------------------------------------------ forward
    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted MFR of ``output`` against ``target``, both (B, 3, H, W) in [0, 1]; a scalar tensor."""
        if output.shape != target.shape or output.dim() != 4 or output.shape[1] != 3:
            raise ValueError(
                f"output and target must both be (B, 3, H, W); got {tuple(output.shape)} and {tuple(target.shape)}"
            )
        device = self.teacher.device
        if output.device != device or target.device != device:
            raise ValueError(
                f"images are on {output.device}/{target.device} but the teacher is on {device}; call mfr.to(device)"
            )
        w_clip, w_prefix, w_gpt = self.weights
        need_gpt = w_gpt > 0 or self.kl_weight > 0
        need_prefix = w_prefix > 0 or need_gpt
        target = target.detach()
        batch = output.shape[0]
        # Per-sample mask of bit-identical pairs: their terms are exactly zero by definition.
        differs = (output.detach() != target).flatten(1).any(dim=1).float()
        fuse = self.fuse_passes if self.fuse_passes is not None else device.type == "cuda"

        def image_features(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            clip = self.teacher.clip_embedding(images, self.preprocess)
            return clip, (self.teacher.prefix_embeddings(clip) if need_prefix else None)

        if fuse:
            clip_both, prefix_both = image_features(torch.cat([target.to(output.dtype), output]))
            clip_ref, clip_out = clip_both[:batch].detach(), clip_both[batch:]
            prefix_ref = prefix_both[:batch].detach() if prefix_both is not None else None
            prefix_out = prefix_both[batch:] if prefix_both is not None else None
        else:
            with torch.no_grad():
                clip_ref, prefix_ref = image_features(target)
            clip_out, prefix_out = image_features(output)

        terms: dict[str, torch.Tensor] = {}
        total = output.new_zeros((), dtype=torch.float32)
        if w_clip > 0:
            clip_term = self._term(
                self.teacher.mapper_input(clip_out), self.teacher.mapper_input(clip_ref), None, differs
            )
            terms["mfr_clip"] = clip_term.detach()
            total = total + w_clip * clip_term
        if w_prefix > 0:
            prefix_term = self._term(prefix_out, prefix_ref, None, differs)
            terms["mfr_prefix"] = prefix_term.detach()
            total = total + w_prefix * prefix_term
        if need_gpt:
            gpt_term, kl_term = self._language_terms(prefix_out, prefix_ref, differs, fuse)
            if w_gpt > 0:
                terms["mfr_gpt"] = gpt_term.detach()
                total = total + w_gpt * gpt_term
            if self.kl_weight > 0:
                terms["mfr_kl"] = kl_term.detach()
                total = total + self.kl_weight * kl_term
        self._last_terms = terms
        return total

    # ------------------------------------------------------------------------------------------ pieces
    def _language_terms(self, prefix_out, prefix_ref, differs, fuse):
        teacher = self.teacher
        batch, prefix_len = prefix_ref.shape[:2]
        mask = None
        embeds_ref, embeds_out = prefix_ref, prefix_out
        if self.caption_conditioned:
            tokens, caption_mask = self._reference_captions(prefix_ref)
            words = teacher.token_embeddings(tokens).to(prefix_ref.dtype)
            embeds_ref = torch.cat([prefix_ref, words], dim=1)
            embeds_out = torch.cat([prefix_out, words.to(prefix_out.dtype)], dim=1)
            mask = torch.cat([caption_mask.new_ones(batch, prefix_len), caption_mask], dim=1)
        want_all = self.gpt_layers != "last"
        want_logits = self.kl_weight > 0
        if fuse:
            hidden_both, logits_both = teacher.language_model(
                torch.cat([embeds_ref, embeds_out]), want_all, want_logits
            )
            hidden_ref = [h[:batch].detach() for h in hidden_both]
            hidden_out = [h[batch:] for h in hidden_both]
            logits_ref = logits_both[:batch].detach() if want_logits else None
            logits_out = logits_both[batch:] if want_logits else None
        else:
            with torch.no_grad():
                hidden_ref, logits_ref = teacher.language_model(embeds_ref, want_all, want_logits)
            hidden_out, logits_out = teacher.language_model(embeds_out, want_all, want_logits)
        indices = self._layer_indices(len(hidden_out))
        gpt_term = torch.stack([self._term(hidden_out[i], hidden_ref[i], mask, differs) for i in indices]).mean()
        kl_term = None
        if want_logits:
            log_out = torch.log_softmax(logits_out.float(), dim=-1)
            log_ref = torch.log_softmax(logits_ref.float(), dim=-1)
            # KL >= 0 in exact arithmetic; clamp the float rounding that can make it a hair negative.
            kl = F.kl_div(log_out, log_ref, log_target=True, reduction="none").sum(dim=-1).clamp_min(0.0)  # (B, L)
            kl_term = (_masked_mean(kl, mask) * differs).mean()
        return gpt_term, kl_term

    def _layer_indices(self, available: int) -> list[int]:
        if self.gpt_layers == "last":
            return [available - 1]
        if self.gpt_layers == "all":
            return list(range(1, available))
        return [i % available for i in self.gpt_layers]

    @torch.no_grad()
    def _reference_captions(self, prefix_ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy captions of the reference prefixes as padded tokens (B, T) and a validity mask (B, T)."""
        rows = self.teacher.decode_prefix(prefix_ref.detach(), max_tokens=self.max_caption_tokens)
        self.last_captions = [self.teacher.tokenizer.decode(row) for row in rows]
        length = max(1, max(len(row) for row in rows))
        stop = self.teacher.tokenizer.stop_token_id
        tokens = torch.full((len(rows), length), stop, dtype=torch.long, device=prefix_ref.device)
        mask = torch.zeros((len(rows), length), dtype=torch.float32, device=prefix_ref.device)
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1.0
        return tokens, mask

    def _term(
        self, out: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None, differs: torch.Tensor
    ) -> torch.Tensor:
        """Batch mean of the per-sample distance between features (B, C) or (B, L, C)."""
        out, ref = out.float(), ref.float()
        if self.distance == "cosine":
            per_position = 1.0 - F.cosine_similarity(out, ref, dim=-1, eps=_EPS)
            per_sample = _masked_mean(per_position, mask) if per_position.dim() == 2 else per_position
            return (per_sample.clamp_min(0.0) * differs).mean()
        diff = (out - ref).abs() if self.distance == "l1" else (out - ref).square()
        per_sample = _sample_mean(diff, mask)
        if self.normalize:
            scale = ref.abs() if self.distance == "l1" else ref.square()
            per_sample = per_sample / _sample_mean(scale, mask).clamp_min(_EPS)
        return (per_sample * differs).mean()


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over dim 1 of (B, L) values, counting only positions where ``mask`` is 1."""
    if mask is None:
        return values.mean(dim=1)
    return (values * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def _sample_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-sample mean of (B, C) or (B, L, C) values over everything but the batch (masked positions skipped)."""
    if values.dim() == 2:
        return values.mean(dim=1)
    return _masked_mean(values.mean(dim=-1), mask)


def _check_layers(layers, n_layer: int):
    if layers in ("last", "all"):
        return layers
    if isinstance(layers, str):
        raise ValueError(f"gpt_layers must be 'last', 'all' or a list of layer indices, got {layers!r}")
    indices = [int(i) for i in layers]
    if not indices:
        raise ValueError("gpt_layers is an empty list")
    for i in indices:
        if not -(n_layer + 1) <= i <= n_layer:
            raise ValueError(f"gpt_layers index {i} out of range for GPT-2 with {n_layer} layers (0..{n_layer})")
    return indices
