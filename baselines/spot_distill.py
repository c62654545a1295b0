"""`spot-distill`: SPOT's stage 2 (self-training) as the DIAS authors' code defines it (docs/reference.md#spot).

Not published: the authors' SPOT rows are stage 1 alone and only a COCO config of this stage exists, so its
numbers have nothing to be compared with.

The teacher is a trained stage-1 model (`spot`), frozen and always in evaluation mode (not an EMA): it decodes in
raster order and its shared Gaussian still samples noise. The student starts from the same stage-1 weights
(`load_stage`, the authors' `ckpt_map` pairing keys by order) but has per-slot Gaussians (fresh), bi-level truncated
Slot Attention, DINOv2 blocks 8–11 fine-tuned and a frozen copy of the pretrained backbone (`encode_backbone2`)
whose features are the decoder's input and target. Loss: the student's feature MSE + 0.005 × the cross-entropy
between the student's Slot Attention map and the teacher's decoder attention, slots Hungarian-matched by IoU.

The authors feed the cross-entropy the Slot Attention map *after* its softmax, so the loss takes a log-softmax
of probabilities; that is the default (`match_input="probabilities"`). `"logits"` is the official SPOT's
cross-entropy on the logits, computed as log(attention): log-softmax ignores the per-pixel constant by which
log(softmax(logits)) differs from the logits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from baselines.common import BaselineConfigError
from baselines.spot import (
    SPOT,
    SPOTConfig,
    build_spot,
    full_size_config,
    full_size_train,
    synthetic_config,
    synthetic_train,
)
from harness.config import TrainConfig, WeightSchedule
from harness.contract import ModelOutput, SlotModel
from harness.nn.checkpoint import load_by_prefix_order
from harness.registry import register_method

MATCH_INPUTS = ("probabilities", "logits")
MATCH_WEIGHT = 0.005
# The authors' ckpt_map (target ← source, model names without "m."): the stage-1 model into the teacher, its
# encoder, Slot Attention and decoder into the student. Their encode_posit_embed pair matches nothing (an Identity)
# and is left out; the student's initialiser and encode_backbone2 are not loaded.
STAGE_MAP = [("teacher.", ""), ("student.encode_backbone.", "encode_backbone."),
             ("student.encode_project.", "encode_project."), ("student.aggregat.", "aggregat."),
             ("student.decode.", "decode.")]


@dataclass(kw_only=True)
class SPOTDistillConfig(SPOTConfig):
    """Stage 2 of SPOT on top of the stage-1 architecture fields (teacher and student share them)."""

    stage: str | None = "spot"
    first_tuned_block: int = 8  # the student's DINOv2 blocks from this one on train (embeddings, earlier ones: not)
    match_input: str = "probabilities"  # "probabilities": the authors' quirk; "logits": the official SPOT's loss


def student_freeze(first_tuned_block: int) -> list[str]:
    """Frozen parameters (torch names): the whole teacher, the student backbone's embeddings (class, register,
    position and patch) and blocks before `first_tuned_block`, and the student's backbone copy."""
    early = "|".join(str(i) for i in range(first_tuned_block))
    blocks = rf"encoder\.layer\.({early})\." if early else r"(?!)"
    return [r"^teacher\.", rf"^student\.encode_backbone\.1\.hf\.(embeddings\.|{blocks})",
            r"^student\.encode_backbone2\."]


def matched_targets(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """student (b, n, m), teacher (b, n, m) attention maps → (b, m) per pixel the student slot that the Hungarian
    matching (maximal total IoU of the two argmax segmentations) pairs with the teacher's argmax slot there."""
    b, n, _m = student.shape
    if teacher.shape != student.shape:
        raise ValueError(f"student attention {tuple(student.shape)} and teacher attention {tuple(teacher.shape)} "
                         "differ in shape")
    student_slot, teacher_slot = student.argmax(1), teacher.argmax(1)  # (b, m)
    if student.device.type == "meta":  # shape inference: no values to match
        return teacher_slot
    s = F.one_hot(student_slot, n).double()  # (b, m, n)
    t = F.one_hot(teacher_slot, n).double()
    intersection = torch.einsum("bms,bmt->bst", s, t)
    union = s.sum(1)[:, :, None] + t.sum(1)[:, None, :] - intersection
    iou = torch.where(union > 0, intersection / union.clamp_min(1), 0.0).cpu().numpy()
    student_of_teacher = np.empty((b, n), dtype=np.int64)
    for i in range(b):
        rows, cols = linear_sum_assignment(iou[i], maximize=True)
        student_of_teacher[i, cols] = rows
    lookup = torch.from_numpy(student_of_teacher).to(teacher_slot.device)
    return lookup.gather(1, teacher_slot)


def matched_cross_entropy(attention: torch.Tensor, teacher: torch.Tensor,
                          match_input: str = "probabilities") -> torch.Tensor:
    """The authors' `AttentMatchLoss`: cross-entropy over slots of the student's Slot Attention map (b, n, h, w)
    against the Hungarian-matched teacher argmax, mean over pixels and batch. `match_input="probabilities"` feeds
    the softmaxed map to cross-entropy as the authors do; "logits" feeds its log (≡ the logits, see the module
    docstring), clamped at the smallest normal float so a zero probability costs a finite amount."""
    attention, teacher = attention.flatten(2), teacher.flatten(2)
    target = matched_targets(attention.detach(), teacher.detach())
    if match_input == "logits":
        attention = attention.clamp_min(torch.finfo(attention.dtype).tiny).log()
    elif match_input != "probabilities":
        raise ValueError(f"match_input must be one of {MATCH_INPUTS}, got {match_input!r}")
    return F.cross_entropy(attention, target)


class SPOTDistill(SlotModel):
    """The authors' `SPOTDistill`: attributes `teacher` then `student` (checkpoint keys `teacher.*` = the stage-1
    keys, `student.*`), so the checkpoint holds the teacher as theirs does.

    forward → the student's output with losses {"recon", "match"} and the teacher's decoder attention as extra
    "attentd2". `frozen_backbone()` is the student's frozen backbone copy: its output may be cached and passed as
    `features`; the student's fine-tuned backbone and the teacher still run on the images.
    """

    def __init__(self, teacher: SPOT, student: SPOT, match_input: str = "probabilities"):
        super().__init__()
        self.teacher = teacher
        self.student = student
        self.match_input = match_input

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def frozen_backbone(self):
        return self.student.frozen_backbone()

    def load_stage(self, stage_state_dict: dict[str, torch.Tensor]) -> None:
        load_by_prefix_order(self, stage_state_dict, STAGE_MAP)

    def forward(self, images: torch.Tensor, features: torch.Tensor | None = None) -> ModelOutput:
        with torch.no_grad():
            attentd2 = self.teacher(images).extras["attentd"]
        out = self.student(images, features)
        match = matched_cross_entropy(out.extras["attenta"], attentd2, self.match_input)
        return ModelOutput(slots=out.slots, masks=out.masks, losses={**out.losses, "match": match},
                           extras={**out.extras, "attentd2": attentd2})


SPOT_DISTILL = register_method(
    "spot-distill", train_cost=8, tables=("spot-ablation",),
    description="SPOT stage 2 (self-training) as in the DIAS authors' code, unpublished: frozen stage-1 teacher "
                "(raster order), student with per-slot Gaussians, bi-level SA, DINOv2 blocks 8-11 tuned; MSE + 0.005 x "
                "Hungarian-matched attention cross-entropy.")


@SPOT_DISTILL.builder
def build(config: SPOTDistillConfig, *, pretrained: bool = False) -> SPOTDistill:
    """Teacher and student from `config`'s architecture; `pretrained=True` loads DINOv2 into the teacher, whose
    backbone the student copies twice (`load_stage` then overwrites all but the student's frozen copy)."""
    if config.match_input not in MATCH_INPUTS:
        raise BaselineConfigError(f"spot-distill config: match_input must be one of {MATCH_INPUTS}, got "
                                  f"{config.match_input!r}")
    if not 0 <= config.first_tuned_block <= config.backbone.layers:
        raise BaselineConfigError(f"spot-distill config: first_tuned_block {config.first_tuned_block} is not a "
                                  f"block of the {config.backbone.layers}-block backbone")
    teacher = build_spot(config, pretrained=pretrained)
    student = build_spot(config, pretrained=False, student_of=teacher)
    return SPOTDistill(teacher, student, config.match_input)


def _distill_train(stage1: TrainConfig, first_tuned_block: int) -> TrainConfig:
    """Stage 1's optimiser, schedule and steps with stage 2's frozen parameters and loss weights."""
    return dataclasses.replace(stage1, freeze=student_freeze(first_tuned_block),
                               loss_weights={"match": WeightSchedule(kind="constant", end=MATCH_WEIGHT)})


@SPOT_DISTILL.config("coco")
def coco(dataset: str) -> SPOTDistillConfig:
    """docs/reference.md#spot: `spot_r_distill-coco.py`, the stage-1 recipe (100k steps)."""
    return full_size_config(dataset, SPOTDistillConfig, train=_distill_train(full_size_train(dataset), 8))


@SPOT_DISTILL.config("synthetic")
def synthetic(dataset: str) -> SPOTDistillConfig:
    """The stage-1 CPU config; the last of the tiny ViT's 2 blocks is tuned (the authors tune the last third)."""
    return synthetic_config(dataset, SPOTDistillConfig, first_tuned_block=1,
                            train=_distill_train(synthetic_train(), 1))
