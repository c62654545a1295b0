"""Result records: one JSON file per evaluated cell (method × dataset × seed), the single exchange format
between the runner (which writes them) and the reports (which read them).

A record carries the run's identity (what was evaluated, on which data, with which protocol and code),
the per-image ledger (metric arrays keyed by record key, with validity flags) and the dataset means
over valid images. Reports never recompute a metric: they aggregate ledgers.

    {
      "schema": "harness.result/1",
      "unit": UNIT,  # the metric values (means, per_image, curve) are 0–1 fractions; reports show percent
      "identity": {"method", "dataset", "split", "seed", "protocol", "config_hash", "config",
                   "data_card", "checkpoint", "eval_noise", "versions", "device", ...},
      "means":     {"ari": float|null, "ari_fg": ..., "mbo": ..., "miou": ...},   # 0–1, as the protocol averages
      "n_valid":   {"ari": int, ...},                                          # images in each mean
      "per_image": {"keys": [str], "ari": [float|null], ..., "valid": [bool], "valid_fg": [bool]},
                   # a value is null where the protocol does not count the image in that metric's mean
      "cost":      {...},  # optional: train/eval seconds, images/s, peak memory, parameters, steps
      "curve":     [{"step", "ari", ..., "heldout_ari", ..., "train_loss", "train_<term>", ...}],  # trained cells:
                   # every validation of the run (0–1; held-out images and training loss means where recorded)
      "selection": {"rule": "last" | "best-val" | "best-heldout", "step", "on": metric}  # trained cells
    }
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.metrics.protocols import METRICS

SCHEMA = "harness.result/1"
# A recognition table's cell record (harness.engine.recognition): identity, the probe's and its trivial row's metrics
# per protocol, the training pairs it saw.
RECOGNITION_SCHEMA = "harness.recognition/1"
UNIT = "fraction (0-1); reports show percent (x100)"
REQUIRED_IDENTITY = ("method", "dataset", "seed", "protocol", "config_hash", "data_card", "checkpoint", "versions")


class ResultError(HarnessError):
    pass


def make_record(identity: dict, per_image: dict, cost: dict | None = None, *, curve: list[dict] | None = None,
                selection: dict | None = None) -> dict:
    """Build a validated record under `identity["protocol"]`: an image's value is kept where the protocol
    counts that image in the metric's mean (`Protocol.mean_over`), null elsewhere, so the ledger's non-null
    values are exactly what the mean averages (with the protocol's mean arithmetic)."""
    from harness.metrics import PROTOCOLS
    from harness.metrics.aggregate import dataset_means

    protocol = PROTOCOLS.get(identity["protocol"])
    per_image = {k: list(v) for k, v in per_image.items()}
    per_image["valid"] = [bool(v) for v in per_image["valid"]]
    per_image["valid_fg"] = [bool(v) for v in per_image["valid_fg"]]
    for m in METRICS:
        rule = protocol.mean_over(m)
        counted = per_image[rule] if rule != "all" else [True] * len(per_image[m])
        per_image[m] = [float(v) if ok else None for v, ok in zip(per_image[m], counted)]
    per_image["keys"] = [k.decode() if isinstance(k, bytes) else str(k) for k in per_image["keys"]]
    means = dataset_means(per_image, protocol)
    counts = {m: sum(v is not None for v in per_image[m]) for m in METRICS}
    record = {"schema": SCHEMA, "unit": UNIT, "identity": identity, "means": means, "n_valid": counts,
              "per_image": per_image, "cost": cost or {}}
    if curve is not None:
        record.update(curve=[{k: _json_number(v) for k, v in point.items()} for point in curve], selection=selection)
    validate(record, "<new record>")
    return record


def _json_number(value):
    """A curve value as JSON can hold it: an undefined metric (NaN, no valid image) is null."""
    return None if isinstance(value, float) and value != value else value


def validate(record: dict, where: str) -> None:
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise ResultError(f"{where}: not a result record (schema is not {SCHEMA!r})")
    identity = record.get("identity", {})
    missing = [k for k in REQUIRED_IDENTITY if k not in identity]
    if missing:
        raise ResultError(f"{where}: identity lacks {', '.join(missing)}")
    per_image = record.get("per_image", {})
    lengths = {k: len(per_image.get(k, [])) for k in ("keys", *METRICS, "valid", "valid_fg")}
    if len(set(lengths.values())) != 1:
        raise ResultError(f"{where}: per-image arrays differ in length: {lengths}")
    for m in METRICS:
        if m not in record.get("means", {}):
            raise ResultError(f"{where}: means lacks {m!r}")


def write_record(path: str | Path, record: dict) -> None:
    validate(record, str(path))
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=False, allow_nan=False) + "\n")


def read_record(path: str | Path) -> dict:
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultError(f"{path}: no such result file") from None
    except json.JSONDecodeError as e:
        raise ResultError(f"{path}: not valid JSON ({e})") from None
    validate(record, str(path))
    return record


# A few evaluated images per cell for the report's mask gallery, beside the record (`<record>.gallery.npz`):
#   image (k, H, W, 3) uint8 RGB; gt (k, H, W) int16 index map (0 = first gt channel, −1 = no label);
#   mask_<name> (k, H, W) int16 argmax index map for every named attention of the method; keys (k,) str.
GALLERY_SUFFIX = ".gallery.npz"


def gallery_path(record_path: str | Path) -> Path:
    record_path = Path(record_path)
    return record_path.with_name(record_path.stem + GALLERY_SUFFIX)


def write_gallery(record_path: str | Path, image, gt, masks: dict, keys) -> None:
    import io

    import numpy as np

    from harness.io import atomic_write_bytes

    buf = io.BytesIO()
    arrays = {"image": np.asarray(image, np.uint8), "gt": np.asarray(gt, np.int16),
              "keys": np.asarray([str(k) for k in keys])}
    arrays.update({f"mask_{name}": np.asarray(m, np.int16) for name, m in masks.items()})
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(gallery_path(record_path), buf.getvalue())


def read_gallery(record_path: str | Path) -> dict | None:
    """The gallery beside a record as {"image", "gt", "keys", "masks": {name: array}}, or None if absent."""
    import numpy as np

    path = gallery_path(record_path)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in ("image", "gt", "keys")}
        out["masks"] = {k[len("mask_"):]: z[k] for k in z.files if k.startswith("mask_")}
    return out
