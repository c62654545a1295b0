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
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from harness.compute import forward_precision
from harness.config import WeightSchedule
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
from harness.run.loader import train_loader
from harness.run.seeding import seed_everything
from harness.run.step import Stepper

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

    @property
    def loss_weights(self) -> dict[str, WeightSchedule]:
        """The losses' weights as the optimiser step reads them (harness.run.step): the box term's is box_weight."""
        return {"l1": WeightSchedule(kind="constant", end=self.box_weight)}


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


def probe_losses(logits, boxes, clazz, bbox) -> dict[str, torch.Tensor]:
    """{"ce": cross-entropy mean over pairs, "l1": L1 mean over pairs × 4} in float32, unweighted (the box term's
    weight is `ProbeConfig.box_weight`)."""
    return {"ce": F.cross_entropy(logits.float(), clazz), "l1": F.l1_loss(boxes.float(), bbox.float())}


def discovery_output(model: nn.Module, batch: dict, device: torch.device, amp: str):
    """The frozen discovery model's ModelOutput for a batch, without gradients, in whatever mode the model is in
    (on the batch's cached backbone "feature"s if it has them)."""
    missing = [k for k in ("clazz", "bbox") if k not in batch]
    if missing:
        raise ProbeInputError(f"the probe's batches need {', '.join(missing)}: open the splits with "
                              "open_split(..., extra=('clazz', 'bbox'))")
    images = batch["image"].to(device, non_blocking=True)
    features = batch.get("feature")  # the frozen backbone's cached output (harness.run.feature_cache)
    with torch.no_grad(), forward_precision(device, amp):
        return model(images) if features is None else model(images, features=features.to(device))


def kept_pairs(out, batch: dict, protocol: RecognitionProtocol):
    """(Matches, slots (m,d), clazz (m,), bbox (m,4)) of the pairs `protocol` keeps. Slots come from `out.slots`,
    masks from `out.masks[protocol.mask]`."""
    if out.slots is None or protocol.mask not in out.masks:
        raise ProbeInputError(f"the discovery model must return slots and a {protocol.mask!r} mask for the probe "
                              f"(it returned masks: {', '.join(sorted(out.masks)) or 'none'})")
    segment = batch["segment"].to(out.slots.device)
    pred = slot_segments(out.masks[protocol.mask].detach(), tuple(segment.shape[1:3]))
    matches = match_objects(pred, segment, protocol)
    return (matches, *gather_matched(matches, out.slots.detach().float(), batch["clazz"], batch["bbox"]))


def matched_pairs(model: nn.Module, batch: dict, protocol: RecognitionProtocol, device: torch.device, amp: str):
    """One batch → the kept pairs' (slots (m,d), clazz (m,), bbox (m,4)) (discovery_output, then kept_pairs)."""
    return kept_pairs(discovery_output(model, batch, device, amp), batch, protocol)[1:]


def evaluate_probe(model: nn.Module, probe: RecognitionProbe, dataset: Dataset, *, protocol: str | RecognitionProtocol,
                   batch_size: int = 32, device: str | torch.device = "cpu", amp: str = "fp16",
                   num_workers: int = 0, trivial: TrivialPredictor | None = None):
    """The probe's metrics on `dataset` (items with "clazz" and "bbox"), discovery model and probe in eval mode:
    {"top1", "top3", "box_iou"} as fractions (micro averages over kept pairs) and "matched" (kept pairs).
    With `trivial`: (the probe's metrics, the trivial predictor's on the same pairs)."""
    device = torch.device(device)
    protocol = RECOGNITION_PROTOCOLS.get(protocol) if isinstance(protocol, str) else protocol
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)
    pairs = (matched_pairs(model, batch, protocol, device, amp) for batch in loader)
    metrics, baseline = score_pairs(probe, pairs, device=device, amp=amp, trivial=trivial)
    return metrics if trivial is None else (metrics, baseline)


def score_pairs(probe: RecognitionProbe, pairs, *, device: torch.device, amp: str,
                trivial: TrivialPredictor | None = None) -> tuple[dict, dict | None]:
    """Tally the probe (eval mode) over batches of kept pairs (slots, clazz, bbox); and, with `trivial`, the
    trivial predictor on the very same pairs."""
    probe.eval()
    tally, baseline = RecognitionTally(), RecognitionTally() if trivial is not None else None
    for slots, clazz, bbox in pairs:
        with torch.no_grad(), forward_precision(device, amp):
            logits, boxes = probe(slots.to(device))
        tally.add(logits, boxes, clazz, bbox)
        if baseline is not None:
            baseline.add(*trivial(len(clazz)), clazz, bbox)
    return tally.result(), None if baseline is None else baseline.result()


@dataclass
class ProbeResult:
    probe: RecognitionProbe
    metrics: dict  # the val split's metrics under the training protocol after the last step (the authors' value)
    record: dict  # config, protocol, seed, steps, skipped steps, the discovery model's modes
    train_pairs: PairStatistics  # class counts and boxes of every pair the probe was trained on


def fit_probe(loader, position, pairs_of, config: ProbeConfig, *, seed: int, device: torch.device
              ) -> tuple[RecognitionProbe, int, int, PairStatistics]:
    """The authors' optimisation of a fresh probe: `config.steps` steps over `loader`'s batches (epoch after
    epoch, `position(epoch, 0)` first), each turned into kept pairs by `pairs_of(batch)`; Adam with the lr set
    from the schedule before every step, no clipping, fp16 autocast + GradScaler on CUDA. A batch with no kept
    pair is skipped (its step counts, as a GradScaler-skipped step of the authors' would).
    → (probe, steps, skipped steps, statistics of the pairs trained on)."""
    seed_everything(seed)
    probe = RecognitionProbe(config.slot_dim, config.num_classes, config.hidden, config.dropout).to(device)
    stepper = Stepper(probe, config, device, config.amp)  # Adam, no clip: the authors' probe
    seen = PairStatistics(config.num_classes)
    step, epoch, skipped = 0, 0, 0
    probe.train()
    while step < config.steps:
        position(epoch, 0)
        for batch in loader:
            slots, clazz, bbox = pairs_of(batch)
            if slots.shape[0] == 0:
                skipped += 1
            else:
                seen.add(clazz, bbox)
                stepper(step, lambda: probe_losses(*probe(slots.to(device)), clazz.to(device), bbox.to(device)))
            step += 1
            if step >= config.steps:
                break
        epoch += 1
    return probe, step, skipped, seen


def train_probe(model: nn.Module, train_set: Dataset, val_set: Dataset, config: ProbeConfig | None = None, *,
                seed: int, device: str | torch.device = "cpu", protocols: tuple[str, ...] | None = None
                ) -> ProbeResult:
    """Train a fresh probe for `config.steps` steps on `model`'s frozen slots, then evaluate it on `val_set` once
    under each of `protocols` (default: the training protocol `config.protocol`), beside the trivial predictor of
    its training pairs (`PairStatistics`): record["protocols"] = {name: {"probe", "trivial"}}.

    `model(images) -> ModelOutput` with `.slots` (b,n,config.slot_dim) and `.masks["aggregator"]` (b,n,h,w); its
    parameters are never updated (they are not given to the optimiser and run without gradients). The discovery
    model runs on every step's batch in train mode, as the authors'.
    """
    config = config or ProbeConfig()
    device = torch.device(device)
    protocol = RECOGNITION_PROTOCOLS.get(config.protocol)
    model.to(device)
    loader, position = train_loader(train_set, batch_size=config.batch_size, seed=seed,
                                    num_workers=config.num_workers, collate_fn=collate)
    model.train()
    probe, steps, skipped, seen = fit_probe(
        loader, position, lambda batch: matched_pairs(model, batch, protocol, device, config.amp), config,
        seed=seed, device=device)
    scores = {}
    for name in protocols or (protocol.name,):
        metrics, baseline = evaluate_probe(model, probe, val_set, protocol=name, batch_size=config.batch_size,
                                           device=device, amp=config.amp, num_workers=config.num_workers,
                                           trivial=seen.predictor())
        scores[name] = {"probe": metrics, "trivial": baseline}
    metrics = scores[protocol.name]["probe"] if protocol.name in scores else None
    record = {"protocol": protocol.name, "seed": seed, "steps": steps, "skipped_steps": skipped,
              "config": dataclasses.asdict(config), "pairs": "every step", "train_pairs": seen.pairs,
              "discovery_mode": {"probe_training": "train", "evaluation": "eval"}, "protocols": scores,
              **(metrics or {})}
    return ProbeResult(probe, metrics, record, seen)


class ImagePairs(Dataset):
    """The kept pairs of each image of a split, extracted once: item i = (slots (k,d), clazz (k,), bbox (k,4))."""

    def __init__(self, items: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]

    @property
    def pairs(self) -> int:
        return sum(len(c) for _, c, _ in self.items)


def concat_pairs(items) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of ImagePairs items → their pairs concatenated (the authors' batch: all kept pairs of its images)."""
    slots, clazz, bbox = zip(*items)
    return torch.cat(slots), torch.cat(clazz), torch.cat(bbox)


def extract_pairs(model: nn.Module, dataset: Dataset, protocols, *, train_mode: bool, batch_size: int = 32,
                  device: str | torch.device = "cpu", amp: str = "off") -> dict[str, ImagePairs]:
    """Run the frozen discovery model once over `dataset` (in train or eval mode) and keep, per protocol, each
    image's matched pairs: {protocol name: ImagePairs}. One forward serves every protocol (they differ only in
    which matches they keep)."""
    device = torch.device(device)
    protocols = [RECOGNITION_PROTOCOLS.get(p) if isinstance(p, str) else p for p in protocols]
    model.to(device).train(train_mode)
    out: dict[str, list] = {p.name: [] for p in protocols}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate):
        output = discovery_output(model, batch, device, amp)
        for protocol in protocols:
            matches, slots, clazz, bbox = kept_pairs(output, batch, protocol)
            image = matches.image.to(slots.device)
            for i in range(batch["image"].shape[0]):
                keep = image == i
                out[protocol.name].append((slots[keep].cpu(), clazz[keep].cpu(), bbox[keep].cpu()))
    return {name: ImagePairs(items) for name, items in out.items()}


def train_probe_on_pairs(train_pairs: ImagePairs, val_pairs: dict[str, ImagePairs], config: ProbeConfig, *,
                         seed: int, device: str | torch.device = "cpu") -> tuple[RecognitionProbe, dict, PairStatistics]:
    """The authors' optimisation on pairs extracted once (extract_pairs): batches of `config.batch_size` images'
    pairs, the same schedule and steps, then the probe scored on each protocol's val pairs, beside the trivial
    predictor of the pairs it was trained on. → (probe, record, training-pair statistics); record["protocols"]
    = {protocol: {"probe": metrics, "trivial": metrics}}."""
    device = torch.device(device)
    loader, position = train_loader(train_pairs, batch_size=config.batch_size, seed=seed, num_workers=0,
                                    collate_fn=concat_pairs)
    probe, steps, skipped, seen = fit_probe(loader, position, lambda batch: batch, config, seed=seed, device=device)
    trivial = seen.predictor()
    scores = {}
    for name, pairs in val_pairs.items():
        batches = (concat_pairs([pairs[i] for i in range(j, min(j + config.batch_size, len(pairs)))])
                   for j in range(0, len(pairs), config.batch_size))
        metrics, baseline = score_pairs(probe, batches, device=device, amp=config.amp, trivial=trivial)
        scores[name] = {"probe": metrics, "trivial": baseline}
    record = {"seed": seed, "steps": steps, "skipped_steps": skipped, "config": dataclasses.asdict(config),
              "pairs": "extracted once", "train_pairs": train_pairs.pairs, "protocols": scores}
    return probe, record, seen


# The trivial rows of a recognition table: what the probe's numbers must beat without looking at a slot. From the pairs a
# probe was trained on (the same matching, the same protocol): the majority class (top-3: the three most frequent, ties
# to the lower class id) and the mean ltrb box, scored on the very pairs the probe is scored on (`score_pairs`), so a
# probe row and its trivial row count the same objects.


@dataclass
class PairStatistics:
    """Class counts and the box sum of a set of kept pairs."""

    num_classes: int
    counts: torch.Tensor = field(init=False)
    box_sum: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.counts = torch.zeros(self.num_classes, dtype=torch.int64)
        self.box_sum = torch.zeros(4, dtype=torch.float64)

    @property
    def pairs(self) -> int:
        return int(self.counts.sum())

    def add(self, clazz: torch.Tensor, bbox: torch.Tensor) -> None:
        self.counts += torch.bincount(clazz.cpu().long(), minlength=self.num_classes)[:self.num_classes]
        self.box_sum += bbox.detach().cpu().double().sum(0)

    def predictor(self) -> TrivialPredictor:
        # rank scores: the most frequent class highest, ties broken towards the lower class id
        order = sorted(range(self.num_classes), key=lambda c: (-int(self.counts[c]), c))
        scores = torch.empty(self.num_classes)
        scores[order] = torch.arange(self.num_classes, 0, -1, dtype=torch.float32)
        mean_box = (self.box_sum / max(self.pairs, 1)).float()
        return TrivialPredictor(scores, mean_box)

    def describe(self) -> dict:
        return {"pairs": self.pairs, "class_counts": self.counts.tolist(),
                "mean_box": (self.box_sum / max(self.pairs, 1)).tolist()}


@dataclass(frozen=True)
class TrivialPredictor:
    """The same class scores and box for every pair: `predictor(m)` → (logits (m,C), boxes (m,4))."""

    scores: torch.Tensor
    box: torch.Tensor

    def __call__(self, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scores.expand(m, -1), self.box.expand(m, -1)
