"""IoU matrix, mean best overlap (mBO) and Hungarian mean IoU (mIoU) from pixel counts.

Operation for operation as the authors (DIAS 06e8039 `util_learn.py: intersection_over_union,
hungarian_matching`; `learn/metric.py: mBO, mIoU`), so that float32 results agree to the bit on the same
device: IoU = I / (float(|pred| + |gt|) − I), 0 where the union is 0; per-image sums of IoUs with torch's
`sum(1)`; division by the int64 count of non-empty gt channels. Float32 sums depend on the device's
reduction order, so mBO/mIoU computed on CPU may differ from CUDA ones in the last bit (ARI has no sums).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def iou_matrix(contingency: torch.Tensor, pred_sizes: torch.Tensor, gt_sizes: torch.Tensor,
               dtype: torch.dtype) -> torch.Tensor:
    """(b, c, d) IoU. |pred| counts all pixels, also those without a gt label (docs/reference.md#evaluation-protocol)."""
    inter = contingency.to(dtype)
    union = (pred_sizes[:, :, None] + gt_sizes[:, None, :]).to(dtype) - inter
    return torch.where(union == 0, 0.0, inter / union)


def mean_best_overlap(iou: torch.Tensor, gt_sizes: torch.Tensor) -> torch.Tensor:
    """Per gt channel the best IoU over pred channels (a pred may serve several gt), summed and divided by
    the number of non-empty gt channels (empty ones add 0). NaN where there is none."""
    b, c, d = iou.shape
    best = iou.amax(1) if c else iou.new_zeros(b, d)
    return best.sum(1) / (gt_sizes > 0).sum(1)


def mean_hungarian_iou(iou: torch.Tensor, pred_sizes: torch.Tensor, gt_sizes: torch.Tensor) -> torch.Tensor:
    """One-to-one matching maximising the total IoU (scipy `linear_sum_assignment`, as the authors), summed
    over matched pairs and divided by the number of non-empty gt channels (unmatched gt count 0).

    The IoU matrices of the whole batch go to the host in one transfer. Trailing pred channels that are
    empty in every image are dropped first: the authors' one-hot has `batch max + 1` channels, so they never
    have them, and the float32 sum over the min(c, d) matched pairs then has their shape and order.
    """
    b, c, d = iou.shape
    used = (pred_sizes > 0).any(0).to(iou.dtype)  # (c,) travels with the IoUs: still one transfer
    host = torch.cat([iou.reshape(b * c * d), used]).cpu().numpy()
    matrices, used = host[: b * c * d].reshape(b, c, d), host[b * c * d:]
    rows = int(np.flatnonzero(used)[-1]) + 1 if used.any() else 0
    matched = np.zeros((b, min(rows, d)), dtype=host.dtype)
    for i, matrix in enumerate(matrices[:, :rows]):
        pred_idx, gt_idx = linear_sum_assignment(matrix, maximize=True)  # rows come back sorted
        matched[i] = matrix[pred_idx, gt_idx]
    return torch.from_numpy(matched).to(iou.device).sum(1) / (gt_sizes > 0).sum(1)
