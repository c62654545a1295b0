"""Training logs: CSV files (train.csv every `every` steps, val.csv at each validation) and TensorBoard.

A resumed run first drops the rows a killed run wrote after its last checkpoint, so a log never holds a step
twice; TensorBoard's `purge_step` does the same for its event files. In a data-parallel run only rank 0 logs
(`enabled=False` elsewhere: nothing is read, truncated or written).
"""

from __future__ import annotations

import csv
from pathlib import Path

from harness.io import atomic_write_text


class RunLog:
    def __init__(self, run_dir: Path, resume_step: int, tensorboard: bool = True, enabled: bool = True):
        self.run_dir, self.enabled = run_dir, enabled
        self.tb = None
        if not enabled:
            return
        for name in ("train.csv", "val.csv"):
            self._truncate(run_dir / name, resume_step)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step or None)

    @staticmethod
    def _truncate(path: Path, step: int) -> None:
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        header, body = rows[0], [r for r in rows[1:] if r and int(r[0]) <= step]
        lines = [",".join(header)] + [",".join(r) for r in body]
        atomic_write_text(path, "\n".join(lines) + "\n")

    def write(self, name: str, step: int, values: dict) -> None:
        if not self.enabled:
            return
        path = self.run_dir / f"{name}.csv"
        row = {"step": step, **values}
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{name}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
