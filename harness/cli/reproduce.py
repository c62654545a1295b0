"""`reproduce`: run every (method, dataset, seed) cell of a table that has no result yet — resuming interrupted
training — then write reports/acc-<T>.xlsx/.md/.html and print the table."""

from __future__ import annotations

from pathlib import Path

from harness.cli.checks import check_dir, check_table
from harness.cli.common import add_compute_args, add_format_args, add_overrides
from harness.errors import HarnessError
from harness.io import check_output_dir
from harness.run.launch import EXECUTORS, SlurmOptions, local_jobs


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="run a table's missing cells (train or load checkpoints), then report",
                       description=__doc__)
    p.add_argument("--table", default="mini", help="table name (mini, v3, recogn-v3, ...); default: mini")
    p.add_argument("--data-dir", type=Path, help="holds <dataset>/{train,val}.lmdb (synthetic tables: generated "
                                                 "into data/<table> unless given)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--checkpoints", type=Path,
                     help="evaluate released checkpoints <DIR>/<label>/<seed>-<epoch>.pth instead of training")
    how.add_argument("--train", action="store_true", help="train every learned cell (the default)")
    p.add_argument("--results", type=Path, default=Path("runs"), help="result records, runs and stages")
    p.add_argument("--out", type=Path, default=Path("reports"), help="report directory")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seeds", type=int, nargs="+", help="run only these seeds (default: the table's)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="--executor local: cells run at once in worker processes, each with its share of the "
                        "cores (default: one per core on CPU, one on an accelerator; 1 = in this process)")
    add_overrides(p)
    add_compute_args(p)
    p.add_argument("--allow-mixed", action="store_true",
                   help="aggregate cells that differ in protocol, data or budget (listed in the report) and reuse "
                        "records made with another config")
    p.add_argument("--keep-state", action="store_true",
                   help="keep each finished training run's train_state.pt (optimiser, RNG; only a resume reads it)")
    p.add_argument("--feature-cache", type=Path, metavar="DIR",
                   help="cache frozen-backbone features in DIR across evaluations (identical metrics, faster)")
    add_format_args(p)
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: the cells on this machine, --jobs at a time (default); slurm: one Slurm job per "
                        "cell (job arrays), pre-empted jobs resubmitted and resumed; submitit-local: the same "
                        "submitit path with subprocesses of this machine")
    g = p.add_argument_group("cluster jobs (--executor slurm / submitit-local)")
    g.add_argument("--slurm-gpus", type=int, metavar="N",
                   help="GPUs per training job, one data-parallel process each (default: the table's budget, 1); "
                        "with --device cpu, N CPU processes")
    g.add_argument("--slurm-time", type=int, metavar="MIN", help="wall-time limit per job in minutes (default: the "
                                                                 "table's budget; required on Slurm without one)")
    g.add_argument("--slurm-cpus", type=int, metavar="C", help="CPUs per process (data-loader workers + 1)")
    g.add_argument("--slurm-partition", metavar="P")
    g.add_argument("--slurm-setup", action="append", default=[], metavar="CMD",
                   help="a shell line run in the job before the harness, e.g. 'source .venv/bin/activate' "
                        "(repeatable)")
    g.add_argument("--slurm-param", action="append", default=[], metavar="KEY=VALUE",
                   help="any other sbatch parameter, e.g. account=proj or qos=high (repeatable)")
    g.add_argument("--slurm-timeouts", type=int, default=3, metavar="N",
                   help="how often a job may time out and be resubmitted (pre-emptions do not count)")
    p.set_defaults(func=run, check=check)


def check(args) -> None:
    check_table(args.table)  # the engine lists every missing data file and checkpoint before it runs a cell
    if args.data_dir is not None and args.data_dir.exists():  # a synthetic table's data is generated into it
        check_dir(args.data_dir, "--data-dir")
    local_jobs(args.jobs, device=args.device, jobs=1)  # refuses --jobs below 1
    slurm_options(args)


def slurm_options(args) -> SlurmOptions:
    extra = {}
    for item in args.slurm_param:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HarnessError(f"--slurm-param {item!r} is not of the form KEY=VALUE")
        extra[key.strip().replace("-", "_")] = value.strip()
    return SlurmOptions(partition=args.slurm_partition, setup=tuple(args.slurm_setup), extra=extra,
                        max_timeouts=args.slurm_timeouts)


def run(args) -> int:
    from harness.engine import ReproduceError, ReproduceOptions, reproduce
    from harness.report.render import parse_formats
    from harness.run.distributed import requested_size

    if requested_size() > 1:
        raise ReproduceError("reproduce was started by a data-parallel launcher (WORLD_SIZE > 1): every process "
                             "would run every cell. Run it as one process; data-parallel cells come from "
                             "--executor slurm --slurm-gpus N, single runs from `torchrun ... -m harness train`")
    for directory in (args.results, args.out):
        check_output_dir(directory)
    options = ReproduceOptions(
        data_dir=args.data_dir, results=args.results, out_dir=args.out, checkpoints=args.checkpoints,
        device=args.device, overrides=tuple(args.overrides), allow_mixed=args.allow_mixed,
        seeds=tuple(args.seeds) if args.seeds else None, feature_cache=args.feature_cache, executor=args.executor,
        gpus=args.slurm_gpus, minutes=args.slurm_time, cpus=args.slurm_cpus, slurm=slurm_options(args),
        jobs=args.jobs, formats=parse_formats(args.formats), keep_state=args.keep_state)
    reproduce(args.table, options)
    return 0
