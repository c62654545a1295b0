"""The DIAS model as released (docs/reference.md#dias), with the paper's extension behind a switch (dias/extension.py).

frozen DINOv2 features → MLP → Slot Attention from a shared Gaussian (all iterations' maps kept) → random-order
masked Transformer decoder reconstructing the DINOv2 features from the slots. Losses: feature MSE, and the
self-distillation of the first iteration's attention toward the last one's.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from dias.extension import ExtensionConfig, refine_slots
from harness.contract import ModelOutput, SlotModel
from harness.nn.slot_attention import zero_biases


def distillation_loss(first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """The authors' `CrossEntropyLoss(attenta[0], attenta[-1].detach())`: soft-target cross-entropy over the slot
    dim (dim 1), mean over the rest: −Σ_n t · log_softmax(input).

    Quirk kept on purpose (docs/reference.md#quirks, quirk 3): `input` is a0, already a probability map, and log_softmax
    is applied to it anyway. This produced the published numbers.
    """
    return F.cross_entropy(first, last.detach())


class DIAS(SlotModel):
    """Attribute names are the checkpoint format (encode_backbone, encode_posit_embed, encode_project, initializ,
    aggregat, decode). Biases of all but the backbone and initialiser start at zero (the authors' reset_parameters).

    forward(images (b, 3, H, W), features=None) → ModelOutput(slots (b, n, d), masks {"decoder": decoder attention,
    "aggregator": last Slot Attention map} (b, n, h, w), losses {"recon", "distill"} unweighted, extras under the
    authors' names {"feature", "attenta", "recon", "attentd"} (+ "smask" with the extension on)). `features`
    (b, c, h, w), when given, are the frozen backbone's output for `images` (harness.run.feature_cache) and replace
    `encode_backbone(images)`; nothing else reads the images.
    """

    def __init__(self, encode_backbone: nn.Module, encode_posit_embed: nn.Module, encode_project: nn.Module,
                 initializ: nn.Module, aggregat: nn.Module, decode: nn.Module,
                 extension: ExtensionConfig | None = None):
        super().__init__()
        self.encode_backbone = encode_backbone
        self.encode_posit_embed = encode_posit_embed
        self.encode_project = encode_project
        self.initializ = initializ
        self.aggregat = aggregat
        self.decode = decode
        self.extension = extension or ExtensionConfig()
        zero_biases(self.encode_posit_embed, self.encode_project, self.aggregat, self.decode)
        self._masks_only = False

    def frozen_backbone(self) -> nn.Module:
        return self.encode_backbone

    @contextlib.contextmanager
    def masks_only(self):
        """Evaluation of the masks: no reconstruction (the decoder's last feed-forward) and no losses; the
        masks are the same tensors as in the full forward (tests/dias/test_dias_masks_only.py)."""
        previous, self._masks_only = self._masks_only, True
        try:
            yield
        finally:
            self._masks_only = previous

    def forward(self, images: torch.Tensor, features: torch.Tensor | None = None) -> ModelOutput:
        feature = (self.encode_backbone(images) if features is None else features).detach()  # (b, c, h, w); frozen
        b, _, h, w = feature.shape
        encode = self.encode_posit_embed(feature.permute(0, 2, 3, 1)).flatten(1, 2)
        encode = self.encode_project(encode)
        slotz, attenta = self.aggregat(encode, self.initializ(b))
        smask = None
        if self.extension.active:
            slotz, attenta, smask = refine_slots(self.aggregat, encode, slotz, attenta, self.extension)
        reconstruct = not self._masks_only
        recon, attentd = self.decode(feature.flatten(2).transpose(1, 2), slotz, smask, reconstruct)
        attentd = attentd.unflatten(2, (h, w))
        attenta = [a.unflatten(2, (h, w)) for a in attenta]
        extras = {"feature": feature, "attenta": attenta, "attentd": attentd}
        if smask is not None:
            extras["smask"] = smask
        masks = {"decoder": attentd, "aggregator": attenta[-1]}
        if not reconstruct:
            return ModelOutput(slots=slotz, masks=masks, extras=extras)
        extras["recon"] = recon = recon.transpose(1, 2).reshape(feature.shape)
        return ModelOutput(
            slots=slotz,
            masks=masks,
            losses={"recon": F.mse_loss(recon, feature.detach()),
                    "distill": distillation_loss(attenta[0], attenta[-1])},
            extras=extras,
        )
