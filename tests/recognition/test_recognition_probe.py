"""The recognition probe: the authors' head layout, losses and schedule by hand, and an end-to-end run on tiny
generated data with a frozen fake discovery model whose slots encode the object's colour (hence its class):
the probe must beat the majority class, the discovery model stays unchanged and runs in the authors' modes."""

import numpy as np
import pytest
import torch
from torch import nn

from harness.data import collate, open_split
from harness.data.codec import encode_index_map, encode_png_rgb
from harness.data.lmdb_io import LmdbWriter
from harness.metrics.recognition import RECOGNITION_PROTOCOLS
from harness.nn.output import ModelOutput
from harness.run.probe import (
    ProbeConfig,
    ProbeInputError,
    RecognitionProbe,
    evaluate_probe,
    matched_pairs,
    probe_losses,
    train_probe,
)
from harness.run.schedules import learning_rate

SIZE = 16
CLASS_OF_CHANNEL = (5, 2, 7)  # red, green, blue objects; class ids used raw (as COCO's)
CHANNEL_P = (0.55, 0.3, 0.15)


def _write_split(path, split, count, seed):
    rng = np.random.default_rng(seed)
    with LmdbWriter(path, meta={"dataset": "synthetic", "split": split, "format": "v3",
                                "generator": {"resolution": SIZE}}) as writer:
        for _ in range(count):
            image = np.zeros((SIZE, SIZE, 3), np.uint8)
            index = np.zeros((SIZE, SIZE), np.uint8)
            k = int(rng.integers(1, 3))
            channels = rng.choice(3, size=k, replace=False, p=CHANNEL_P)
            for j, c in enumerate(channels):  # object j+1: a square in the left or right half
                top, side = int(rng.integers(0, 8)), int(rng.integers(4, 8))
                left = 8 * j + int(rng.integers(0, 8 - side + 1))
                image[top:top + side, left:left + side, c] = 255
                index[top:top + side, left:left + side] = j + 1
            writer.append({"image": encode_png_rgb(image), "segment": encode_index_map(index),
                           "clazz": np.array([CLASS_OF_CHANNEL[c] for c in channels], np.uint8)})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    (root / "synthetic").mkdir()
    _write_split(root / "synthetic" / "train.lmdb", "train", 96, 0)
    _write_split(root / "synthetic" / "val.lmdb", "val", 48, 1)
    return root


class ColourSlots(nn.Module):
    """Slot 0 takes the dark pixels, slot c+1 those brightest in channel c; a slot is a frozen random projection
    of the mean colour under its attention, with dropout (so train and eval mode differ). Records its modes."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.proj = nn.Linear(3, dim)
        self.drop = nn.Dropout(0.1)
        self.modes: list[bool] = []

    def forward(self, images):
        self.modes.append(self.training)
        attention = (torch.cat([torch.zeros_like(images[:, :1]), images], 1) * 10).softmax(1)  # (b,4,h,w)
        mean = torch.einsum("bshw,bchw->bsc", attention, images) / attention.sum((2, 3))[..., None]
        return ModelOutput(slots=self.drop(self.proj(mean)), masks={"aggregator": attention})


def test_head_layout_is_the_authors():
    probe = RecognitionProbe()
    assert list(probe.state_dict()) == ["recogn.0.weight", "recogn.0.bias", "recogn.3.weight", "recogn.3.bias"]
    assert sum(p.numel() for p in probe.parameters()) == 180_319
    assert isinstance(probe.recogn[1], nn.GELU) and probe.recogn[2].p == 0.1
    probe.eval()
    slots = torch.randn(3, 256)
    logits, boxes = probe(slots)
    full = probe.recogn(slots)
    assert torch.equal(logits, full[:, :91]) and torch.equal(boxes, full[:, 91:]) and boxes.shape == (3, 4)
    assert RecognitionProbe(slot_dim=8, num_classes=10).recogn[0].in_features == 8


def test_losses_and_schedule_by_hand():
    logits = torch.tensor([[0.0, np.log(3.0)], [0.0, 0.0]])
    losses = probe_losses(logits, torch.zeros(2, 4), torch.tensor([1, 0]), torch.full((2, 4), 0.5))
    assert losses["ce"].item() == pytest.approx(-(np.log(0.75) + np.log(0.5)) / 2)
    assert losses["l1"].item() == pytest.approx(0.5)
    config = ProbeConfig()
    assert [learning_rate(s, config) for s in (0, 250, 500)] == pytest.approx([0.0, 5e-4, 1e-3])
    assert learning_rate(5250, config) == pytest.approx((1e-3 + 1e-6) / 2)
    assert learning_rate(10_000, config) == pytest.approx(1e-6)


def test_probe_on_frozen_fake_model_beats_the_majority_class(data_dir):
    torch.manual_seed(0)
    model = ColourSlots()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train = open_split(data_dir, "synthetic", "train", train=True, extra=("clazz", "bbox"))
    val = open_split(data_dir, "synthetic", "val", extra=("clazz", "bbox"))
    config = ProbeConfig(steps=150, warmup_steps=8, batch_size=16, slot_dim=8, num_classes=8, hidden=32,
                         protocol="all-objects", num_workers=0)
    result = train_probe(model, train, val, config, seed=0)
    modes = list(model.modes)

    model.eval()
    protocol, cpu = RECOGNITION_PROTOCOLS.get("all-objects"), torch.device("cpu")
    loader = torch.utils.data.DataLoader(val, batch_size=16, collate_fn=collate)
    classes = torch.cat([matched_pairs(model, batch, protocol, cpu, "off")[1] for batch in loader])
    majority = torch.bincount(classes).max().item() / len(classes)
    assert result.metrics["matched"] == len(classes) > 40
    assert result.metrics["top1"] > majority + 0.2, (result.metrics, majority)
    assert result.metrics["top3"] >= result.metrics["top1"]
    assert 0.0 <= result.metrics["box_iou"] <= 1.0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # frozen
    assert modes == [True] * 150 + [False] * 3  # train mode while the probe trains, eval mode for the 3 val batches
    assert result.record["steps"] == 150 and result.record["protocol"] == "all-objects"


def test_batches_without_objects_keys_are_refused(data_dir):
    plain = open_split(data_dir, "synthetic", "val")
    with pytest.raises(ProbeInputError, match=r"extra=\('clazz', 'bbox'\)"):
        evaluate_probe(ColourSlots(), RecognitionProbe(8, 8), plain, protocol="smoothsa-v3", batch_size=16)
