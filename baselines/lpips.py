"""LPIPS with AlexNet features (Zhang et al., CVPR 2018): the perceptual term of the authors' `vqvae-c4` training
(their `LPIPSLoss(net="alex")` = the `lpips` package, called as lpips(target, input), averaged).

d(x, y) = Σ_layers mean_hw ‖w_l ⊙ (f̂_l(x) − f̂_l(y))‖², f̂ = AlexNet ReLU outputs after the scaling layer,
unit-normalised over channels (eps 1e-10); w_l = the learnt 1×1 "lin" weights.

Weights come only from a local file (nothing is downloaded): the `lpips` package's LPIPS(net="alex") state_dict,
as written by `torch.save(lpips.LPIPS(net="alex").state_dict(), PATH)` — keys `net.slice{1..5}.<i>.{weight,bias}`
(torchvision AlexNet `features.<i>`), `lin{0..4}.model.1.weight` and `scaling_layer.{shift,scale}`.
"""

from __future__ import annotations

import os
import re

import torch
from torch import nn

from harness.errors import HarnessError
from harness.nn.checkpoint import read_weights

# AlexNet `features` convs: index → (in, out, kernel, stride, padding); LPIPS taps the ReLU after each.
ALEXNET_CONVS = {0: (3, 64, 11, 4, 2), 3: (64, 192, 5, 1, 2), 6: (192, 384, 3, 1, 1), 8: (384, 256, 3, 1, 1),
                 10: (256, 256, 3, 1, 1)}
# The lpips package's slice holding each conv.
SLICE_OF_CONV = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


class LPIPSWeightsError(HarnessError):
    """The LPIPS weight file is missing keys or has unexpected shapes."""


class LPIPS(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        layers: list[nn.Module] = []
        for i in range(12):
            if i in ALEXNET_CONVS:
                cin, cout, k, s, p = ALEXNET_CONVS[i]
                layers.append(nn.Conv2d(cin, cout, k, s, p))
            elif i - 1 in ALEXNET_CONVS:
                layers.append(nn.ReLU())
            else:
                layers.append(nn.MaxPool2d(3, 2))
        self.features = nn.Sequential(*layers)
        self.lins = nn.ModuleList(nn.Conv2d(c[1], 1, 1, bias=False) for c in ALEXNET_CONVS.values())
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "LPIPS":
        """Load the lpips package's LPIPS(net="alex") state_dict from a local file (see the module docstring)."""
        source = read_weights(path)
        model = cls()
        state = {}
        for key, value in source.items():
            if match := re.fullmatch(r"net\.slice(\d)\.(\d+)\.(weight|bias)", key):
                state[f"features.{match[2]}.{match[3]}"] = value
            elif match := re.fullmatch(r"lin(\d)\.model\.1\.weight", key):
                state[f"lins.{match[1]}.weight"] = value
            elif match := re.fullmatch(r"scaling_layer\.(shift|scale)", key):
                state[match[1]] = value.view(1, 3, 1, 1)
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state) - {"shift", "scale"})
        shapes = [f"{k} {tuple(v.shape)} (want {tuple(expected[k].shape)})" for k, v in state.items()
                  if k in expected and v.shape != expected[k].shape]
        if missing or shapes:
            raise LPIPSWeightsError(f"LPIPS weights {path}: missing {missing or 'none'}; mis-shaped {shapes or 'none'}")
        model.load_state_dict({**expected, **state})
        return model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y (b,3,H,W) in [−1, 1] → (b,) distances."""
        fx, fy = (self.features_at_taps((t - self.shift) / self.scale) for t in (x, y))
        total = 0
        for lin, a, b in zip(self.lins, fx, fy):
            diff = (unit_normalise(a) - unit_normalise(b)).square()
            total = total + lin(diff).mean((2, 3))
        return total[:, 0]

    def features_at_taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i - 1 in ALEXNET_CONVS:
                taps.append(x)
        return taps


def unit_normalise(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.square().sum(1, keepdim=True).sqrt() + eps)
