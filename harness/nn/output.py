"""The one forward contract every registered method honours (docs/architecture.md#the-method-contract)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelOutput:
    """`model(images)` returns this.

    Methods that declare a frozen backbone (`SlotModel.frozen_backbone()`: DIAS, SmoothSA, SPOT, DINOSAUR, SLATE,
    SlotDiffusion) also take `model(images, features=F)`, F being that backbone's output for `images`: the result is
    the same as `model(images)` without running the backbone (harness.run.feature_cache supplies F).

    slots:  (b, n, d) slot vectors (None for a stage such as a VQ-VAE).
    masks:  named attention maps (b, n, h, w), e.g. "decoder", "aggregator"; the method's config names the
            one that is evaluated as the segmentation.
    losses: unweighted scalar loss terms by name; the training loop applies the config's weights.
    extras: the method's other outputs under the authors' names (e.g. DIAS "feature", "attenta", "recon"),
            for fidelity tests and visualisation.
    """

    slots: torch.Tensor | None
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
