"""The object-recognition probe: an MLP trained on the frozen slots of any discovery model to predict each
matched object's class and box (docs/reference.md#object-recognition-probe).

    result = train_probe(model, open_split(d, "coco", "train", train=True, extra=("clazz", "bbox")),
                         open_split(d, "coco", "val", extra=("clazz", "bbox")), ProbeConfig(), seed=42)
    result.metrics   # {"top1", "top3", "box_iou", "matched"} under ProbeConfig.protocol (harness.metrics.recognition)
"""

from harness.recognition.probe import (
    ImagePairs,
    ProbeConfig,
    ProbeInputError,
    ProbeResult,
    RecognitionProbe,
    evaluate_probe,
    extract_pairs,
    fit_probe,
    matched_pairs,
    probe_losses,
    score_pairs,
    train_probe,
    train_probe_on_pairs,
)
from harness.recognition.trivial import PairStatistics, TrivialPredictor

__all__ = ["ImagePairs", "PairStatistics", "ProbeConfig", "ProbeInputError", "ProbeResult", "RecognitionProbe",
           "TrivialPredictor", "evaluate_probe", "extract_pairs", "fit_probe", "matched_pairs", "probe_losses",
           "score_pairs", "train_probe", "train_probe_on_pairs"]
