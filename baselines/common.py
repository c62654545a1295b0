"""Facts shared by the baselines: datasets and slot counts, the VVO training recipe
(docs/reference.md#hyper-parameters)."""

from __future__ import annotations

from harness.config import TrainConfig
from harness.data import DATASETS as DATASET_SPECS
from harness.errors import HarnessError
from harness.recipes import random_vit as synthetic

# The authors' datasets and their slot counts (docs/reference.md#hyper-parameters; the same for every method:
# harness.data.DATASETS).
DATASETS = ("clevrtex", "coco", "voc")
SLOTS = {name: DATASET_SPECS.get(name).num_slots for name in DATASETS}

# The synthetic data's image side and the slot count every method uses on it (harness.recipes.random_vit).
SYNTHETIC_RESOLUTION = synthetic.RESOLUTION
SYNTHETIC_SLOTS = synthetic.SLOTS


class BaselineConfigError(HarnessError):
    """A baseline's config is inconsistent or does not fit the weights it names; the message names the field."""


def vvo_train(steps: int = 50_000, batch_size: int = 32, lr: float = 2e-4, freeze: list[str] | None = None,
              **kw) -> TrainConfig:
    """The VQ-VFM-OCL recipe: Adam, warm-up total/20 then cosine to lr/1000, validation every total/40,
    checkpoints kept from total/2 on (harness.config.SCHEDULE_RULES), AMP fp16, grad-clip 1."""
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, freeze=list(freeze or []), **kw)

