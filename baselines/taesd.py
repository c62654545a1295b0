"""TAESD-shaped convolutional encoder/decoder of the VQ-VAE tokenizers (docs/reference.md#vq-vae-tokenizers).

The authors slice the `layers` Sequential of diffusers' `AutoencoderTiny` ("madebyollin/taesd"): encoder layers
0..13 (all but the final conv to 4 latent channels), decoder layers 2..18 (all but conv_in and its ReLU, which
their own Conv1x1 + GroupNorm replace). We build the same diffusers modules and slice them the same way, so
the Sequential indices — part of the checkpoint format (`encode.1.<i>.*`, `decode.2.<i>.*`) — are theirs.
Widths and block counts are parameters so that the small CPU configs use the same classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from baselines.common import BaselineConfigError


@dataclass(kw_only=True)
class TaesdSpec:
    """Shape of the TAESD trunk. The defaults are "madebyollin/taesd"."""

    width: int = 64
    encoder_blocks: tuple[int, ...] = (1, 3, 3, 3)
    decoder_blocks: tuple[int, ...] = (3, 3, 3, 1)

    @property
    def downsample(self) -> int:
        """Spatial reduction of the encoder trunk (one stride-2 conv between block groups)."""
        return 2 ** (len(self.encoder_blocks) - 1)


def build_autoencoder_tiny(spec: TaesdSpec, pretrained: str | None = None) -> nn.Module:
    """diffusers `AutoencoderTiny` of `spec`'s shape; `pretrained` (HF id or local dir) loads its weights.

    Pretrained weights go through float16 and back, as the authors load them (`torch_dtype=float16`, `.float()`),
    so a model initialised here starts from bit-identical numbers.
    """
    from diffusers import AutoencoderTiny  # slow import: only where a TAESD is built

    if pretrained is not None:
        model = AutoencoderTiny.from_pretrained(pretrained, torch_dtype=torch.float16).float()
        found = (model.config.encoder_block_out_channels[0], tuple(model.config.num_encoder_blocks),
                 tuple(model.config.num_decoder_blocks))
        wanted = (spec.width, tuple(spec.encoder_blocks), tuple(spec.decoder_blocks))
        if found != wanted:
            raise BaselineConfigError(f"pretrained TAESD {pretrained!r} has (width, encoder, decoder blocks) "
                                      f"{found}; the config asks for {wanted}")
        return model
    widths = (spec.width,) * len(spec.encoder_blocks)
    return AutoencoderTiny(
        encoder_block_out_channels=widths,
        decoder_block_out_channels=(spec.width,) * len(spec.decoder_blocks),
        num_encoder_blocks=tuple(spec.encoder_blocks),
        num_decoder_blocks=tuple(spec.decoder_blocks),
    )


class TaesdEncoder(nn.Sequential):
    """TAESD encoder without its last conv: (b,3,H,W) → (b,width,H/d,W/d), d = spec.downsample.

    Quirk 10 (docs/reference.md#quirks): the input is mapped x → (x+1)/2 as for [-1,1] images although the baselines
    feed ImageNet-normalised images. Kept: the released tokenizers were trained that way.
    """

    def __init__(self, spec: TaesdSpec, pretrained: str | None = None, autoencoder: nn.Module | None = None):
        autoencoder = autoencoder or build_autoencoder_tiny(spec, pretrained)
        super().__init__(*list(autoencoder.encoder.layers)[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.add(1).div(2))


class TaesdDecoder(nn.Sequential):
    """TAESD decoder without conv_in and its ReLU: (b,width,h,w) → (b,3,h·u,w·u); output mapped y → 2y−1.

    diffusers' own `DecoderTiny.forward` would also clamp the latent with tanh; the authors call the sliced
    layers directly, so no clamp.
    """

    def __init__(self, spec: TaesdSpec, pretrained: str | None = None, autoencoder: nn.Module | None = None):
        autoencoder = autoencoder or build_autoencoder_tiny(spec, pretrained)
        super().__init__(*list(autoencoder.decoder.layers)[2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).mul(2).sub(1)
