"""Executors of `reproduce`: submitit jobs (its LocalExecutor here; Slurm where there is one) give the records the
in-process executor gives; a pre-empted job is resubmitted as the same cell and its training resumes; failures
are all reported; the Slurm job file asks for the cell's resources."""

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from submitit.helpers import DelayedSubmission

import harness.run.step as run_step
from harness.cli import main
from harness.data import SynthConfig
from harness.engine import Cell, ReproduceOptions, plan, reproduce
from harness.engine.core import ensure_data, resources
from harness.engine.discovery import Runner
from harness.run.launch import (
    Job,
    JobsFailed,
    LaunchError,
    LocalPool,
    Resources,
    Resumable,
    SlurmOptions,
    Submitit,
    local_jobs,
    slurm_parameters,
)
from harness.tables import TABLES, Budget, Row, SynthData, Table

REPO = Path(__file__).resolve().parents[2]

# Two reference rows and one tiny learned cell (DINOSAUR, 4 steps at batch 8, a checkpoint every 2 steps).
TABLE = Table(
    name="launch-test", description="throwaway table of tests/run/test_launch.py",
    rows=(Row("grid", "synthetic", "grid"), Row("single-segment", "synthetic", "single-segment"),
          Row("dinosaur", "synthetic", "dinosaur")),
    seeds=(3,), data="synthetic", synth=SynthData(SynthConfig(resolution=32, seed=2), train=24, val=12),
    budget=Budget(steps=4, batch_size=8, minutes=10),
)
TABLES.register(TABLE.name, TABLE)
OVERRIDES = ["train.checkpoint_interval=2"]


def records(results: Path) -> dict:
    return {row.label: json.loads((results / TABLE.name / row.label / "seed3.json").read_text()) for row in TABLE.rows}


@pytest.fixture
def importable(monkeypatch):
    """Job subprocesses import the harness (pickled by reference) from the checkout."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.chdir(REPO)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The table run by the default executor: (directory with data/ and local/, its rendered result)."""
    root = tmp_path_factory.mktemp("in-process")
    result = reproduce(TABLE.name, ReproduceOptions(
        data_dir=root / "data", results=root / "local", out_dir=root / "reports", overrides=tuple(OVERRIDES),
        progress=False))
    return root, result


def test_submitit_local_gives_the_records_of_the_local_executor(tmp_path, in_process, importable, capsys):
    root, in_process = in_process
    submitted = reproduce(TABLE.name, ReproduceOptions(
        data_dir=root / "data", results=tmp_path / "jobs", out_dir=tmp_path / "rep", overrides=tuple(OVERRIDES),
        progress=False, executor="submitit-local"))
    printed = capsys.readouterr().out
    assert "submitted 3 job(s) to local" in printed and "[3/3]" in printed

    local, jobs = records(root / "local"), records(tmp_path / "jobs")
    for label in local:
        assert jobs[label]["means"] == local[label]["means"], label
        assert jobs[label]["per_image"] == local[label]["per_image"], label
    assert jobs["dinosaur"]["identity"]["steps"] == 4 and jobs["dinosaur"]["cost"]["steps"] == 4
    assert sorted((tmp_path / "jobs" / TABLE.name / "jobs").glob("*/*_log.err"))  # submitit's logs
    # the report is rendered from the collected records as the local path renders it
    assert sorted(p.name for p in submitted.paths.values()) == [f"acc-{TABLE.name}.{x}" for x in ("html", "md", "xlsx")]
    assert submitted.text == in_process.text


@pytest.fixture(scope="module")
def in_process_at_pool_threads(tmp_path_factory):
    """The in-process table at the intra-op thread count of a 2-process pool's workers: CPU kernels reduce in a
    thread-count-dependent order, so records are comparable only at equal thread counts
    (docs/experiments.md#2026-11-24-data-parallel-equivalence-and-thread-counts)."""
    root = tmp_path_factory.mktemp("in-process-pool-threads")
    before = torch.get_num_threads()
    torch.set_num_threads(LocalPool(2).threads)
    try:
        result = reproduce(TABLE.name, ReproduceOptions(
            data_dir=root / "data", results=root / "local", out_dir=root / "reports", overrides=tuple(OVERRIDES),
            progress=False))
    finally:
        torch.set_num_threads(before)
    return root, result


def test_cells_in_parallel_worker_processes_give_the_records_of_the_local_executor(tmp_path,
                                                                                  in_process_at_pool_threads, capfd):
    root, in_process = in_process_at_pool_threads
    parallel = reproduce(TABLE.name, ReproduceOptions(
        data_dir=root / "data", results=tmp_path / "pool", out_dir=tmp_path / "rep", overrides=tuple(OVERRIDES),
        progress=False, jobs=2))
    printed = capfd.readouterr().out  # the workers print to the inherited stdout
    assert "3 to run, 2 at a time" in printed and "[3/3]" in printed
    assert printed.count(": started (process") == 3
    local, pooled = records(root / "local"), records(tmp_path / "pool")
    for label in local:
        assert pooled[label]["per_image"] == local[label]["per_image"], label
    assert parallel.text == in_process.text


def test_pool_reports_every_failure_after_the_others_finish():
    jobs = [Job("bad", int, ("not a number",)), Job("good", int, ("7",)), Job("also bad", int, ("x",))]
    done = []
    with pytest.raises(JobsFailed) as failed:
        for job, result in LocalPool(2, threads=1).run(jobs):
            done.append((job.name, result))
    assert done == [("good", 7)]
    message = str(failed.value)
    assert message.startswith("2 of 3 job(s) failed")
    assert "bad: ValueError: invalid literal for int() with base 10: 'not a number'" in message
    assert "also bad: ValueError" in message


def test_local_jobs_default_to_one_per_core_on_cpu_and_one_on_an_accelerator(monkeypatch):
    monkeypatch.setattr("harness.run.launch.usable_cores", lambda: 2)
    assert local_jobs(None, device="cpu", jobs=30) == 2
    assert local_jobs(None, device="cpu", jobs=1) == 1
    assert local_jobs(None, device="cuda", jobs=30) == 1
    assert local_jobs(3, device="cuda", jobs=30) == 3
    with pytest.raises(LaunchError, match="--jobs 0"):
        local_jobs(0, device="cpu", jobs=3)


def test_a_preempted_cell_is_resubmitted_as_itself_and_resumes(tmp_path, in_process, monkeypatch):
    """What submitit does on SIGUSR2 (pre-emption or time-out), step by step: the running job stops (here: after
    its step-2 checkpoint), `checkpoint()` gives the submission to requeue, which is pickled and run again; the
    record equals the uninterrupted in-process one."""
    root, _ = in_process
    cell = next(c for c in plan(TABLE, tmp_path)[0] if c.row.method == "dinosaur")
    straight = records(root / "local")["dinosaur"]
    runner = Runner(TABLE, data_dir=root / "data", results=tmp_path / "preempted", device="cpu", checkpoints=None,
                    overrides=tuple(OVERRIDES), progress=False)
    job = Resumable(runner.run, (cell,), processes=1, device="cpu")
    learning_rate = run_step.learning_rate

    def preempted(step, train):
        if step == 3:
            raise KeyboardInterrupt  # stands for the signal: the process goes away mid-run
        return learning_rate(step, train)

    monkeypatch.setattr(run_step, "learning_rate", preempted)
    with pytest.raises(KeyboardInterrupt):
        job()
    monkeypatch.setattr(run_step, "learning_rate", learning_rate)
    resubmitted = job.checkpoint()
    assert isinstance(resubmitted, DelayedSubmission) and isinstance(resubmitted.function, Resumable)
    assert resubmitted.function.args == (cell,) and resubmitted.function.fn.__self__.results == tmp_path / "preempted"
    resubmitted.dump(tmp_path / "requeued.pkl")  # as submitit writes it for the requeued job
    record = DelayedSubmission.load(tmp_path / "requeued.pkl").result()

    run_json = json.loads((cell.run_dir(tmp_path / "preempted") / "run.json").read_text())
    assert run_json["resumed_from"] == 2 and run_json["steps"] == 4
    assert record["per_image"] == straight["per_image"] and record["means"] == straight["means"]


def test_every_failed_job_is_reported_after_the_others_finish(tmp_path, importable):
    executor = Submitit(tmp_path, cluster="local", device="cpu")
    jobs = [Job("bad", int, ("not a number",)), Job("good", int, ("7",))]
    done = []
    with pytest.raises(JobsFailed) as failed:
        for job, result in executor.run(jobs):
            done.append((job.name, result))
    assert done == [("good", 7)]
    message = str(failed.value)
    assert message.startswith("1 of 2 job(s) failed")
    assert "bad (job " in message and "invalid literal for int() with base 10: 'not a number'" in message
    log = message.split("log: ")[1].strip()
    assert Path(log).is_file() and "not a number" in Path(log).read_text()


def test_resources_follow_the_table_budget_and_the_command_line():
    def of(trains, device="cuda", gpus=None, minutes=None, cpus=None):
        return resources(TABLE, trains=trains, device=device, gpus=gpus, minutes=minutes, cpus=cpus)

    assert of(True) == Resources(processes=1, gpus=1, cpus=None, minutes=10)  # the table's budget
    assert of(True, gpus=4, minutes=90, cpus=8) == Resources(processes=4, gpus=4, cpus=8, minutes=90)
    assert of(False, gpus=4) == Resources(processes=1, gpus=1, cpus=None, minutes=10)  # evaluation only
    assert of(True, device="cpu", gpus=2) == Resources(processes=2, gpus=0, cpus=None, minutes=10)
    assert of(True, gpus=0) == Resources(processes=1, gpus=0, cpus=None, minutes=10)


def test_slurm_job_file_asks_for_the_cells_resources(tmp_path, monkeypatch):
    """submitit's own sbatch file for a job array of 2-GPU cells (a stand-in `srun` makes submitit believe it runs
    on a cluster; nothing is submitted)."""
    fake = tmp_path / "bin" / "srun"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    options = SlurmOptions(partition="gpu", setup=("source .venv/bin/activate",), extra={"account": "proj"})
    executor = Submitit(tmp_path, cluster="slurm", device="cuda", slurm=options).executor(
        Resources(processes=2, gpus=2, cpus=6, minutes=90))
    text = executor._executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --ntasks-per-node=2",
                 "#SBATCH --cpus-per-task=6", "#SBATCH --time=90", "#SBATCH --nodes=1", "#SBATCH --account=proj",
                 "#SBATCH --signal=USR2@90", "source .venv/bin/activate"):
        assert line in text.splitlines(), line
    with pytest.raises(LaunchError, match="no wall-time limit.*--slurm-time"):
        slurm_parameters(Resources(minutes=None), options, "harness-v3")


def test_slurm_without_a_cluster_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    with pytest.raises(LaunchError, match="--executor slurm: .*srun.*use --executor local / submitit-local"):
        Submitit(tmp_path, cluster="slurm", device="cuda").executor(Resources(minutes=10))


def test_reproduce_under_a_data_parallel_launcher_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["reproduce", "--table", TABLE.name]) == 2
    assert "every process would run every cell" in capsys.readouterr().err


@pytest.mark.slow
def test_a_training_job_of_two_processes_runs_data_parallel(tmp_path, importable):
    """--slurm-gpus 2 --device cpu through submitit-local: the learned cell's job runs as 2 tasks (gloo)."""
    table = Table(name="launch-test-ddp", description="", rows=TABLE.rows[2:], seeds=TABLE.seeds, data="synthetic",
                  synth=TABLE.synth, budget=TABLE.budget)
    TABLES.register(table.name, table)
    reproduce(table.name, ReproduceOptions(
        data_dir=tmp_path / "data", results=tmp_path / "res", out_dir=tmp_path / "rep", overrides=tuple(OVERRIDES),
        progress=False, executor="submitit-local", gpus=2))
    record = json.loads((tmp_path / "res" / table.name / "dinosaur" / "seed3.json").read_text())
    assert record["identity"]["processes"] == 2 and record["cost"]["steps"] == 4
    cell = Cell(table, table.rows[0], 3)
    assert json.loads((cell.run_dir(tmp_path / "res") / "run.json").read_text())["processes"] == 2


@pytest.mark.slow
def test_a_preempted_job_is_requeued_and_resumes(tmp_path, importable):
    """The real signal path: once the cell's training has checkpointed, its task receives SIGUSR2 (what Slurm
    sends before pre-empting or timing out a job); submitit calls Resumable.checkpoint and requeues; the cell's
    training resumes and its record equals an uninterrupted run's."""
    import signal
    import time

    import submitit
    import torch

    overrides = ["train.steps=40", "train.checkpoint_interval=5"]
    data_dir = ensure_data(TABLE, tmp_path / "data", need_train=True)
    cell = next(c for c in plan(TABLE, tmp_path)[0] if c.row.method == "dinosaur")

    def runner(results):
        return Runner(TABLE, data_dir=data_dir, results=results, device="cpu", checkpoints=None,
                      overrides=overrides, progress=False)

    executor = submitit.LocalExecutor(tmp_path / "jobs" / "%j")
    executor.update_parameters(timeout_min=30)
    job = executor.submit(Resumable(runner(tmp_path / "requeued").run, (cell,), processes=1, device="cpu"))
    state = cell.run_dir(tmp_path / "requeued") / "train_state.pt"
    deadline = time.monotonic() + 300
    while not (state.exists() and torch.load(state, weights_only=True)["step"] >= 10):
        assert time.monotonic() < deadline and job.state == "RUNNING", job.stderr()
        time.sleep(0.05)
    controller = job._process.pid  # submitit's local controller; the job's task is its child
    (task,) = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
    os.kill(int(task), signal.SIGUSR2)
    record = job.result()
    assert "Requeued job" in job.stdout()
    straight = runner(tmp_path / "straight").run(cell)
    run_json = json.loads((cell.run_dir(tmp_path / "requeued") / "run.json").read_text())
    assert 10 <= run_json["resumed_from"] < 40 and run_json["steps"] == 40
    assert record["per_image"] == straight["per_image"] and record["means"] == straight["means"]


def test_pool_workers_die_with_a_killed_parent(tmp_path):
    """kill -9 of `reproduce` must not leave its workers training on (into run directories a rerun will use)."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import os, time\n"
        "from harness.run.launch import Job, LocalPool\n"
        "def work(path):\n"
        "    open(path, 'w').write(str(os.getpid()))\n"
        "    time.sleep(120)\n"
        "if __name__ == '__main__':\n"
        f"    list(LocalPool(1, threads=1).run([Job('sleeper', work, ({str(tmp_path / 'pid')!r},))]))\n")
    (tmp_path / "parent.py").write_text(script)
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py")], cwd=Path(__file__).parents[2])
    for _ in range(600):
        if (tmp_path / "pid").is_file() and (tmp_path / "pid").read_text():
            break
        time.sleep(0.1)
    worker = int((tmp_path / "pid").read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the pool worker outlived its killed parent")
