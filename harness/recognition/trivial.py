"""The trivial rows of a recognition table: what the probe's numbers must beat without looking at a slot.

From the pairs a probe was trained on (the same matching, the same protocol): the majority class — its top-1 is
the most frequent class, its top-3 the three most frequent (ties: the lower class id first) — and the mean ltrb
box. Scored on the very pairs the probe is scored on (harness.recognition.probe.score_pairs), so a probe row and
its trivial row count the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


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
