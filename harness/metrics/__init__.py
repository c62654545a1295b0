"""Segmentation metrics — ARI, ARI-fg, mBO, mIoU — bit for bit with the DIAS authors' evaluator by default,
under named protocols (`PROTOCOLS`; `python -m harness metrics explain`). Aggregation to tables lives in
`harness.metrics.aggregate`."""

from harness.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOLS, Protocol
from harness.metrics.segmentation import MetricInputError, segmentation_metrics
from harness.metrics.segments import attention_to_index, attention_to_segments

__all__ = ["DEFAULT_PROTOCOL", "PROTOCOLS", "MetricInputError", "Protocol", "attention_to_index",
           "attention_to_segments", "segmentation_metrics"]
