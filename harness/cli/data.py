"""`data {convert,synth,info}`: make split files and show their data cards (JSON)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.cli.checks import CONVERTED_DATASETS, GENERATED_DATASETS
from harness.io import check_output_dir


def _print_cards(paths: dict) -> None:
    from harness.data import data_card

    print(json.dumps({split: data_card(path) for split, path in paths.items()}, indent=1))


def _convert(args) -> int:
    from harness.data.convert import convert

    check_output_dir(args.out)
    splits = (args.split,) if args.split else None
    written = convert(args.dataset, args.src, args.out, splits=splits, version=args.format,
                      check_count=not args.no_count_check)
    _print_cards(written)
    return 0


def _synth(args) -> int:
    from harness.data import GENERATORS, DataError

    check_output_dir(args.out)
    config_class, write, _ = GENERATORS[args.dataset]
    resolution = {} if args.resolution is None else {"resolution": args.resolution}
    try:
        config = config_class(seed=args.seed, **resolution)
    except ValueError as e:
        raise DataError(f"{args.dataset} data: {e}") from None
    _print_cards(write(args.out, config, train=args.train, val=args.val))
    return 0


def _info(args) -> int:
    from harness.data import DATASETS, LmdbSplit, data_card

    card = data_card(args.path, dataset=args.dataset)
    print(json.dumps(card, indent=1))
    if args.verify:
        # Decode and transform every record as evaluation would; the first bad one raises.
        split = LmdbSplit(args.path, DATASETS.get(card["dataset"]), card["split"])
        for i in range(len(split)):
            split[i]
    return 0


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a count ≥ 0, got {text}")
    return value


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="make dataset split files and show their data cards")
    verbs = data.add_subparsers(dest="data_verb", required=True, metavar="ACTION")

    p = verbs.add_parser("convert", help="convert a raw dataset into the authors' LMDB layout")
    p.add_argument("dataset", choices=CONVERTED_DATASETS)
    p.add_argument("--src", type=Path, required=True, help="the raw dataset's folder (original layout)")
    p.add_argument("--out", type=Path, required=True, help="data dir: writes OUT/<dataset>/{train,val}.lmdb")
    p.add_argument("--split", choices=["train", "val"], help="convert only this split")
    p.add_argument("--format", choices=["v3", "v4"], default="v3",
                   help="index maps as WebP (v3, the table's files; default) or PNG (v4)")
    p.add_argument("--no-count-check", action="store_true",
                   help="skip the authors' scene-count check (ClevrTex 50 000 / 10 000), e.g. for a subset")
    p.set_defaults(func=_convert)

    p = verbs.add_parser("synth", help="generate a multi-object dataset (synthetic: flat shapes; textured: "
                                        "ClevrTex-like, colour cannot segment it)")
    p.add_argument("--dataset", choices=GENERATED_DATASETS, default="synthetic", help="which (default synthetic)")
    p.add_argument("--out", type=Path, required=True, help="data dir: writes OUT/<dataset>/{train,val}.lmdb")
    p.add_argument("--train", type=_count, default=5000, help="train images (default 5000)")
    p.add_argument("--val", type=_count, default=500, help="val images (default 500)")
    p.add_argument("--resolution", type=int, help="image side in pixels (default: synthetic 32, textured 112)")
    p.add_argument("--seed", type=int, default=0, help="train and val seeds derive from it (default 0)")
    p.set_defaults(func=_synth)

    p = verbs.add_parser("info", help="print the data card of a split file (JSON)")
    p.add_argument("path", type=Path, help="a split file, e.g. DATA_DIR/coco/val.lmdb")
    p.add_argument("--dataset", help="the dataset it holds (default: from the file or its folder name)")
    p.add_argument("--verify", action="store_true", help="also decode and transform every record")
    p.set_defaults(func=_info)
