"""DinoV2Spec.forward_flops against torch's own FLOP counter (torch.utils.flop_counter), run on the meta device: the
count of every matmul, convolution and attention kernel the transformers ViT really launches for one image."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.nn.dinov2 import DinoV2Backbone, DinoV2Spec


@pytest.mark.parametrize("spec", [
    DinoV2Spec(),  # DIAS: ViT-S/14 with 4 registers at 224²
    DinoV2Spec(registers=0),  # the VVO baselines' ViT-S/14
    DinoV2Spec(hidden=64, layers=2, heads=4, patch=4, image_size=32, registers=4),  # the synthetic configs'
], ids=["vit-s14-reg4", "vit-s14", "tiny"])
def test_forward_flops_equal_torch_flop_counter(spec):
    with torch.device("meta"):
        vit = DinoV2Backbone(spec, norm_out=False)
        image = torch.empty(1, 3, spec.image_size, spec.image_size)
    with FlopCounterMode(display=False) as counter:
        vit(image)
    assert spec.forward_flops() == counter.get_total_flops()


def test_vit_s14_reg4_is_about_the_quoted_twelve_point_seven_gflop():
    assert DinoV2Spec().forward_flops() == 12_455_184_384  # 2 % under the 12.7 GFLOP that is often quoted
