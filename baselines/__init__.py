"""The baselines DIAS is compared with, each registered by name with harness.registry:

methods    `sa` (vanilla Slot Attention), `dinosaur`, `slate`, `slotdiffusion`, `spot` (stage 1, published),
           `spot-distill` (its self-training stage), `smoothsa`
stages     `vqvae-c256` (SLATE's tokenizer), `vqvae-c4` (SlotDiffusion's tokenizer)
reference  `grid`, `single-segment`, `colour-kmeans`, `dinov2-kmeans`

Importing the package imports every module so that all of them register.
"""

from baselines import dinosaur, reference, sa, slate, slotdiffusion, smoothsa, spot, spot_distill, vqvae  # noqa: F401
