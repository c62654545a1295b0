"""The authors' recognition probe (docs/reference.md#object-recognition-probe), for any frozen discovery model.

Read top to bottom: the head (their `MLP(256, [512, 95], dropout=0.1)`: class logits then a raw ltrb box), the
losses (cross-entropy + 1.0 × L1 over the kept pairs), the pairs (the discovery model's slots and Slot Attention
maps, matched to the objects by the protocol), the training loop (Adam, linear warm-up then cosine, no clipping,
fp16 autocast + GradScaler on CUDA) and the evaluation (micro averages over the split's kept pairs).

The discovery model is frozen but keeps the authors' modes: train mode while the probe trains (their wrapper
switches the whole model, so slot noise and dropout of the discovery model stay on), eval mode at evaluation.
The evaluation is not reseeded (the authors' is not): noisy slots make repeated evaluations differ slightly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from harness.data import collate
from harness.errors import HarnessError
from harness.metrics.recognition import (
    RECOGNITION_PROTOCOLS,
    RecognitionProtocol,
    RecognitionTally,
    gather_matched,
    match_objects,
    slot_segments,
)
from harness.nn.mlp import MLP
from harness.run.evaluate import autocast
from harness.run.loader import train_loader
from harness.run.schedules import learning_rate
from harness.run.seeding import seed_everything

BOX_SIZE = 4


class ProbeInputError(HarnessError):
    """The discovery model's output or the data lack what the probe needs."""


@dataclass(kw_only=True)
class ProbeConfig:
    """The authors' probe recipe (COCO defaults). `steps`, `lr`, `warmup_steps`, `lr_final_ratio` are read by
    harness.run.schedules.learning_rate: linear 0 → lr over the first 5 % of the steps, cosine to lr × 1e-3.

    slot_dim: the discovery model's slot width (256 for the authors' models; smaller in CPU configs).
    num_classes: logits of the head (COCO: 91 = category ids 0..90 used raw, no background class).
    """

    steps: int = 10_000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 500
    lr_final_ratio: float = 1e-3
    box_weight: float = 1.0
    slot_dim: int = 256
    num_classes: int = 91
    hidden: int = 512
    dropout: float = 0.1
    protocol: str = "smoothsa-v3"
    amp: str = "fp16"  # "fp16": autocast + GradScaler on CUDA, full precision on CPU; "bf16"; "off"
    num_workers: int = 4


class RecognitionProbe(nn.Module):
    """Linear(slot_dim, hidden) → GELU → Dropout → Linear(hidden, num_classes + 4); state-dict keys `recogn.0.*`,
    `recogn.3.*` as the authors' `m.recogn.*` (180 319 parameters at 256 / 512 / 91)."""

    def __init__(self, slot_dim: int = 256, num_classes: int = 91, hidden: int = 512, dropout: float = 0.1):
        super().__init__()
        self.num_classes = num_classes
        self.recogn = MLP(slot_dim, [hidden, num_classes + BOX_SIZE], dropout=dropout)

    def forward(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, slot_dim) → (class logits (m, num_classes), raw ltrb box (m, 4); no sigmoid)."""
        out = self.recogn(slots)
        return out[:, :self.num_classes], out[:, self.num_classes:]


def probe_losses(logits, boxes, clazz, bbox, box_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """{"ce": cross-entropy mean over pairs, "l1": box_weight × L1 mean over pairs × 4} in float32."""
    return {"ce": F.cross_entropy(logits.float(), clazz),
            "l1": box_weight * F.l1_loss(boxes.float(), bbox.float())}


def matched_pairs(model: nn.Module, batch: dict, protocol: RecognitionProtocol, device: torch.device, amp: str):
    """One batch → the kept pairs' (slots (m,d), clazz (m,), bbox (m,4)), the discovery model run without
    gradients in whatever mode it is in. Slots come from `out.slots`, masks from `out.masks[protocol.mask]`."""
    missing = [k for k in ("clazz", "bbox") if k not in batch]
    if missing:
        raise ProbeInputError(f"the probe's batches need {', '.join(missing)}: open the splits with "
                              "open_split(..., extra=('clazz', 'bbox'))")
    images = batch["image"].to(device, non_blocking=True)
    segment = batch["segment"].to(device)
    with torch.no_grad(), autocast(device, amp):
        out = model(images)
    if out.slots is None or protocol.mask not in out.masks:
        raise ProbeInputError(f"the discovery model must return slots and a {protocol.mask!r} mask for the probe "
                              f"(it returned masks: {', '.join(sorted(out.masks)) or 'none'})")
    pred = slot_segments(out.masks[protocol.mask].detach(), tuple(segment.shape[1:3]))
    matches = match_objects(pred, segment, protocol)
    return gather_matched(matches, out.slots.detach().float(), batch["clazz"], batch["bbox"])


def evaluate_probe(model: nn.Module, probe: RecognitionProbe, dataset: Dataset, *, protocol: str | RecognitionProtocol,
                   batch_size: int = 32, device: str | torch.device = "cpu", amp: str = "fp16",
                   num_workers: int = 0) -> dict[str, float | int]:
    """The probe's metrics on `dataset` (items with "clazz" and "bbox"), discovery model and probe in eval mode:
    {"top1", "top3", "box_iou"} as fractions (micro averages over kept pairs) and "matched" (kept pairs)."""
    device = torch.device(device)
    protocol = RECOGNITION_PROTOCOLS.get(protocol) if isinstance(protocol, str) else protocol
    model.eval()
    probe.eval()
    tally = RecognitionTally()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)
    for batch in loader:
        slots, clazz, bbox = matched_pairs(model, batch, protocol, device, amp)
        with torch.no_grad(), autocast(device, amp):
            logits, boxes = probe(slots)
        tally.add(logits, boxes, clazz, bbox)
    return tally.result()


@dataclass
class ProbeResult:
    probe: RecognitionProbe
    metrics: dict  # evaluate_probe's result on the val split after the last step (the authors' reported value)
    record: dict  # config, protocol, seed, steps, skipped steps, the discovery model's modes


def train_probe(model: nn.Module, train_set: Dataset, val_set: Dataset, config: ProbeConfig | None = None, *,
                seed: int, device: str | torch.device = "cpu") -> ProbeResult:
    """Train a fresh probe for `config.steps` steps on `model`'s frozen slots, then evaluate it on `val_set`.

    `model(images) -> ModelOutput` with `.slots` (b,n,config.slot_dim) and `.masks["aggregator"]` (b,n,h,w); its
    parameters are never updated (they are not given to the optimiser and run without gradients). A batch with
    no kept pair is skipped (its step counts, as a GradScaler-skipped step of the authors' would).
    """
    config = config or ProbeConfig()
    device = torch.device(device)
    protocol = RECOGNITION_PROTOCOLS.get(config.protocol)
    seed_everything(seed)
    probe = RecognitionProbe(config.slot_dim, config.num_classes, config.hidden, config.dropout).to(device)
    model.to(device)
    optimizer = torch.optim.Adam(probe.parameters(), lr=0.0)  # lr set from the schedule before every step
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16" and device.type == "cuda")
    loader, position = train_loader(train_set, batch_size=config.batch_size, seed=seed,
                                    num_workers=config.num_workers, collate_fn=collate)

    step, epoch, skipped = 0, 0, 0
    model.train()
    probe.train()
    while step < config.steps:
        position(epoch, 0)
        for batch in loader:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config)
            slots, clazz, bbox = matched_pairs(model, batch, protocol, device, config.amp)
            step += 1
            if slots.shape[0] == 0:
                skipped += 1
            else:
                with autocast(device, config.amp):
                    logits, boxes = probe(slots)
                loss = sum(probe_losses(logits, boxes, clazz.to(device), bbox.to(device), config.box_weight).values())
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            if step >= config.steps:
                break
        epoch += 1

    metrics = evaluate_probe(model, probe, val_set, protocol=protocol, batch_size=config.batch_size,
                             device=device, amp=config.amp, num_workers=config.num_workers)
    record = {"protocol": protocol.name, "seed": seed, "steps": step, "skipped_steps": skipped,
              "config": dataclasses.asdict(config),
              "discovery_mode": {"probe_training": "train", "evaluation": "eval"}, **metrics}
    return ProbeResult(probe, metrics, record)
