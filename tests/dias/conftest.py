"""One real full-size DIAS model per session: building ViT-S and running it at 256² is the expensive part."""

import pytest
import torch

from harness.registry import create_model


@pytest.fixture(scope="session")
def full_dias():
    """(model, eval output on one 256² image with seed 0) for the coco config. The output is computed here, before
    any test loads other weights into the model."""
    torch.manual_seed(0)
    model = create_model("dias", "coco").eval()
    with torch.no_grad():
        output = model(torch.randn(1, 3, 256, 256))
    return model, output
