"""`python -m harness bench` with tiny settings: the printed tables have the expected rows and columns, the numbers
are positive, the JSON agrees with them, and cached evaluation reports identical metrics."""

import contextlib
import io
import json
import re

import pytest
import torch

from harness.cli import main
from harness.nn.onednn import cpu_linear_choice, onednn_available
from harness.registry import get_config
from harness.tools.bench import BACKBONE_COLUMNS, KERNEL_COLUMNS, LOADER_COLUMNS, ROW_COLUMNS, format_table

TINY = ["--method", "dias", "sa", "--amp", "fp32", "bf16", "--steps", "1", "--images", "4", "--batch-size", "2",
        "--flops-config", "dias:synthetic", "--flops-images", "1", "--matmul-size", "64", "--matmul-seconds", "0.01",
        "--threads", "1", "--loader-records", "3", "--kernel-images", "2"]


def table_after(lines: list[str], first_column: str) -> tuple[list[str], list[list[str]]]:
    """(header cells, row cells) of the aligned table whose first column is `first_column`."""
    start = next(i for i, line in enumerate(lines) if re.split(r"\s{2,}", line.strip())[0] == first_column)
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return re.split(r"\s{2,}", lines[start].strip()), rows


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "bench.json"
    threads = torch.get_num_threads()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):  # capsys is per test; the run is shared by the module's tests
        assert main(["bench", *TINY, "--output", str(output)]) == 0
    assert torch.get_num_threads() == threads  # --threads is restored
    return buffer.getvalue().splitlines(), json.loads(output.read_text())


def test_method_table_has_one_row_per_method_amp_and_cache(bench):
    lines, result = bench
    assert lines[0].startswith("machine: cpu")
    backend, why = cpu_linear_choice()
    assert lines[1] == f"linear kernels: {backend} — {why}"  # which kernels, and why
    other = ("blas" if backend == "onednn" else "onednn") if onednn_available() else None
    other = rf", fp32 {other} [\d.]+ GFLOP/s" if other else ""
    assert re.fullmatch(rf"matmul 64×64: fp32 [\d.]+ GFLOP/s, bf16 [\d.]+ GFLOP/s{other}", lines[2])
    header, rows = table_after(lines, "method")
    assert tuple(header) == ROW_COLUMNS
    assert [tuple(r[:4]) for r in rows] == [("dias", "synthetic", "fp32", "off"), ("dias", "synthetic", "fp32", "on"),
                                            ("dias", "synthetic", "bf16", "off"), ("dias", "synthetic", "bf16", "on"),
                                            ("sa", "synthetic", "fp32", "off"), ("sa", "synthetic", "bf16", "off")]
    for row in rows:
        assert len(row) == len(ROW_COLUMNS)
        assert all(float(v) > 0 for v in row[4:11])
        assert row[11] == ("yes" if row[3] == "on" else "—")
    assert len(result["rows"]) == len(rows)
    first = result["rows"][0]
    assert first["train img/s"] == pytest.approx(2 / (first["train ms/step"] / 1e3))  # batch 2
    by_key = {(r["method"], r["amp"], r["cache"]): r for r in result["rows"]}
    for (method, amp, cache), row in by_key.items():
        uncached = by_key[(method, amp, "off")]["eval img/s"]
        assert row["eval vs uncached"] == pytest.approx(row["eval img/s"] / uncached)
        assert 0 < row["train of peak"] < 10


def test_loader_row_compares_with_the_reference_reader(bench):
    lines, result = bench
    assert any(line.startswith("loader, ClevrTex format") for line in lines)
    header, rows = table_after(lines, "records")
    assert tuple(header) == LOADER_COLUMNS and len(rows) == 1 and rows[0][0] == "3" and rows[0][-1] == "yes"
    loader = result["loader"]
    assert loader["speed-up"] == pytest.approx(loader["ours samples/s"] / loader["reference samples/s"])


def test_backbone_table_compares_achieved_and_matmul_gflops(bench):
    lines, result = bench
    spec = get_config("dias", "synthetic").backbone
    title = next(line for line in lines if line.startswith("dias:synthetic forward-only eval"))
    assert f"{spec.forward_flops() / 1e9:.2f} GFLOP/image from its spec" in title and "12.7 reference" in title
    header, rows = table_after(lines, "amp")
    assert tuple(header) == BACKBONE_COLUMNS
    assert [r[0] for r in rows] == ["fp32", "bf16"] and all(r[-1] == "yes" for r in rows)
    for row in result["backbone"]["rows"]:
        assert row["matmul GFLOP/s"] == result["matmul_gflops"][row["amp"]]
        assert row["fraction of peak"] == pytest.approx(row["backbone GFLOP/s"] / row["matmul GFLOP/s"])
        assert row["backbone GFLOP/s"] == pytest.approx(spec.forward_flops() / 1e9 / (row["backbone ms/img"] / 1e3))
        assert row["speed-up"] == pytest.approx(row["eval img/s cached"] / row["eval img/s uncached"])


@pytest.mark.skipif(not onednn_available(), reason="this PyTorch build has no oneDNN linear")
def test_kernel_table_times_blas_against_onednn_linear_layers(bench):
    lines, result = bench
    assert any(line.startswith("dias:synthetic, fp32, linear layers through PyTorch's BLAS") for line in lines)
    header, rows = table_after(lines, "step")
    assert tuple(header) == KERNEL_COLUMNS
    assert [r[0] for r in rows] == ["training step", "eval forward", "eval forward, cached"]
    assert all(r[1] == "2" and float(r[2]) > 0 and float(r[3]) > 0 for r in rows)
    for row in result["linear_kernels"]:
        assert row["oneDNN speed-up"] == pytest.approx(row["BLAS ms"] / row["oneDNN ms"])


def test_format_table_aligns_names_left_and_numbers_right():
    text = format_table(("name", "rate", "ok"), [{"name": "a", "rate": 1234.4, "ok": True},
                                                 {"name": "long", "rate": 0.5, "ok": None}])
    assert text.splitlines() == ["name   rate  ok", "a      1234  yes", "long  0.500  —"]


def test_a_real_dataset_without_data_is_one_clear_error(capsys):
    assert main(["bench", "--dataset", "coco", "--flops-images", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: bench: dataset 'coco' needs --data-dir holding coco/val.lmdb"
