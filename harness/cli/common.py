"""Arguments several verbs share, and their conversion to typed values."""

from __future__ import annotations

from pathlib import Path


def add_overrides(p) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a config field, e.g. --set train.steps=200 (repeatable)")


def add_compute_args(p) -> None:
    p.add_argument("--deterministic", action="store_true",
                   help="bit-identical reruns on this machine: deterministic algorithms, PyTorch's BLAS for linear "
                        "layers (unless $HARNESS_CPU_LINEAR says otherwise) and a fixed thread count; recorded")
    p.add_argument("--threads", type=int, metavar="N", help="intra-op threads of this process (default: torch's)")


def add_format_args(p) -> None:
    """--format: the report files to write (checked, and defaulted, by harness.report.render.parse_formats)."""
    p.add_argument("--format", dest="formats", action="append", metavar="FMT[,FMT...]",
                   help="report formats, repeatable or comma-separated: md, html, xlsx (the default three), csv, "
                        "json, latex")


def add_cell_args(p) -> None:
    """The arguments naming one cell: method, dataset, data, seed, overrides, device and data-parallel size."""
    p.add_argument("--method", required=True, help="registered method name (see `python -m harness methods`)")
    p.add_argument("--dataset", required=True, help="clevrtex, coco, voc, synthetic, textured ...")
    p.add_argument("--data-dir", required=True, type=Path, help="holds <dataset>/{train,val}.lmdb")
    p.add_argument("--seed", type=int, default=42)
    add_overrides(p)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (under torchrun: cpu or cuda, one GPU "
                                                   "per process)")
    add_compute_args(p)
    # Not "--nproc": torchrun's parser claims any later flag that abbreviates one of its own options.
    p.add_argument("--ddp", type=int, metavar="K",
                   help="the number of data-parallel processes this run must have: checked against torchrun's "
                        "WORLD_SIZE, so that a run meant for K processes never trains alone (default: as launched)")


def cell_config(args):
    """The registered config of --method on --dataset with the --set overrides (every problem is one error)."""
    from harness.registry import get_config

    return get_config(args.method, args.dataset, args.overrides)
