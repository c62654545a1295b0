"""Samples/s of read + decode + val transform for one DataLoader worker (one process, one torch thread).

Run with `python -m pytest tests/benchmarks/test_bench_data.py --benchmark-enable`; `extra_info` holds
samples_per_s. Two cases: the synthetic split at its 32×32 size, and ClevrTex-like 320×240 records (PNG
image, WebP segment and depth) resized to 256×256, which mimics the cost of the authors' files.
"""

import numpy as np
import pytest
import torch

from harness.data import DATASETS
from harness.data.codec import encode_index_map, encode_png_rgb
from harness.data.datasets import LmdbSplit
from harness.data.lmdb_io import LmdbWriter
from harness.data.synthetic import SynthConfig, generate, write_split


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


def test_bench_clevrtex_like_320x240_to_256(benchmark, tmp_path, records, one_thread):
    config = SynthConfig(resolution=240, width=320, max_objects=6)
    depth = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    path = tmp_path / "clevrtex" / "val.lmdb"
    with LmdbWriter(path) as writer:
        for start in range(0, records, 25):
            for image, index_map in zip(*generate(config, "val", start, min(25, records - start))):
                writer.append({"image": encode_png_rgb(image), "segment": encode_index_map(index_map),
                               "depth": encode_index_map(depth)})
    split = LmdbSplit(path, DATASETS.get("clevrtex"), "val")
    assert split[0]["image"].shape == (3, 256, 256)
    _measure(benchmark, split)
