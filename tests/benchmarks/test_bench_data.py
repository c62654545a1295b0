"""Samples/s of read + decode + val transform for one DataLoader worker (one process, one torch thread).

Run with `python -m pytest tests/benchmarks/test_bench_data.py --benchmark-enable --benchmark-group-by=group`;
`extra_info` holds samples_per_s. Cases: the synthetic split at its 32×32 size, and ClevrTex-format 320×240
records (PNG image, WebP segment and depth) resized to 256×256, read by the harness and by
`harness.tools.bench.reference_item` (the authors' reader written plainly) in one group, so the ratio reads directly.
"""

import pytest
import torch

from harness.data import DATASETS
from harness.data.datasets import LmdbSplit
from harness.data.synthetic import SynthConfig, write_split
from harness.tools.bench import reference_item, write_clevrtex_like


@pytest.fixture
def records(benchmark):
    """Hundreds of records when measuring; a handful when benchmarks only run once as a smoke test."""
    return 20 if benchmark.disabled else 300


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what a DataLoader worker gets
    yield
    torch.set_num_threads(threads)


def _measure(benchmark, split):
    def epoch():
        for i in range(len(split)):
            split[i]

    benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["records"] = len(split)
    if benchmark.stats:
        benchmark.extra_info["samples_per_s"] = len(split) / benchmark.stats.stats.mean


def test_bench_synthetic_32(benchmark, tmp_path, records, one_thread):
    path = write_split(tmp_path / "synthetic" / "val.lmdb", SynthConfig(), "val", records)
    split = LmdbSplit(path, DATASETS.get("synthetic"), "val")
    assert split[0]["image"].shape == (3, 32, 32)
    _measure(benchmark, split)


@pytest.fixture
def clevrtex_like(tmp_path, records):
    return LmdbSplit(write_clevrtex_like(tmp_path / "clevrtex" / "val.lmdb", records), DATASETS.get("clevrtex"), "val")


def test_bench_clevrtex_like_320x240_to_256(benchmark, clevrtex_like, one_thread):
    assert clevrtex_like[0]["image"].shape == (3, 256, 256)
    benchmark.group = "loader-clevrtex"
    _measure(benchmark, clevrtex_like)


def test_bench_clevrtex_like_reference_reader(benchmark, clevrtex_like, one_thread):
    reader, keys = clevrtex_like._reader, clevrtex_like._reader.keys
    first = reference_item(reader.get(keys[0]), 256)
    assert all(torch.equal(first[k], clevrtex_like[0][k]) for k in ("image", "segment"))
    benchmark.group = "loader-clevrtex"

    def epoch():
        for key in keys:
            reference_item(reader.get(key), 256)

    benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=1)
    if benchmark.stats:
        benchmark.extra_info["samples_per_s"] = len(keys) / benchmark.stats.stats.mean
