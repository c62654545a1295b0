"""Hand-made result records for the report tests: per-image values chosen so that every mean is known."""

from pathlib import Path

import numpy as np

from harness.results import make_record, write_gallery, write_record
from harness.tables import Budget, Row, Table

CARDS = {"synthetic": {"dataset": "synthetic", "split": "val", "records": 4, "file_sha256": "ab" * 32,
                       "keys_sha256": "cd" * 32, "path": "/somewhere/synthetic/val.lmdb"}}
KEYS = ["000000", "000001", "000002", "000003"]


def toy_table(**changes) -> Table:
    fields = dict(
        name="toy", description="two methods and a reference row on synthetic data",
        rows=(Row("alpha", "synthetic", "alpha-syn"), Row("beta", "synthetic", "beta-syn"),
              Row("grid", "synthetic", "grid-syn")),
        seeds=(42, 43, 44), protocol="dias-v3", budget=Budget(steps=100, batch_size=8), data="synthetic",
    )
    fields.update(changes)
    return Table(**fields)


def per_image(values: dict, valid=(True, True, True, False), valid_fg=(True, True, False, False)) -> dict:
    """`values`: metric → 4 per-image values (the 4th image has no labelled pixel, the 3rd no foreground)."""
    return {"keys": KEYS, **{m: list(v) for m, v in values.items()}, "valid": list(valid), "valid_fg": list(valid_fg)}


def uniform(x: float) -> dict:
    """Every metric x on every image (dataset mean x for every metric)."""
    return {m: [x, x, x, x] for m in ("ari", "ari_fg", "mbo", "miou")}


def write_cell(root: Path, table: Table, label: str, seed: int, values: dict, *, protocol="dias-v3", steps=100,
               batch_size=8, card=None, cost=None, gallery=False, extra=None) -> Path:
    row = next(r for r in table.rows if r.label == label)
    identity = {"method": row.method, "dataset": row.dataset, "split": "val", "seed": seed, "protocol": protocol,
                "config_hash": f"hash-{row.method}", "config": {}, "data_card": card or CARDS[row.dataset],
                "checkpoint": {"path": f"runs/{label}/{seed}.pth", "sha256": None, "kind": "weights"},
                "versions": {}, "steps": steps, "batch_size": batch_size, "mask": "decoder", "table": table.name,
                "label": label, "variant": row.variant, **(extra or {})}
    path = root / table.name / label / f"seed{seed}-{protocol}.json"
    write_record(path, make_record(identity, per_image(values), cost))
    if gallery:
        rng = np.random.default_rng(seed)
        image = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
        gt = np.zeros((2, 16, 16), np.int16)
        gt[:, :, 8:] = 1
        gt[:, 0, :] = -1
        masks = {"decoder": (np.arange(16)[None, :, None] // 4 * np.ones((2, 16, 16))).astype(np.int16),
                 "aggregator": np.zeros((2, 16, 16), np.int16)}
        write_gallery(path, image, gt, masks, KEYS[:2])
    return path
