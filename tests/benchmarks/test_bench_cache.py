"""Evaluation with and without the frozen-backbone feature cache (harness.run.feature_cache), random weights:
the synthetic DIAS config, and the full-size DIAS (ViT-S/14 reg4, 256² images → 224²) on synthetic 256² images.

Run with `python -m pytest tests/benchmarks/test_bench_cache.py --benchmark-enable --benchmark-group-by=group`:
each group puts `off` (backbone run) beside `on` (features read from the cache written by a first pass);
`extra_info` holds images_per_s. Both are checked to give the same per-image metrics.
"""

import pytest
import torch

from harness.config import apply_overrides
from harness.data import open_split, split_path
from harness.data.synthetic import SynthConfig, write_split
from harness.metrics import DEFAULT_PROTOCOL
from harness.registry import get_config
from harness.run.evaluate import evaluate
from harness.run.feature_cache import use_feature_cache
from harness.run.train import build_model
from harness.tools.bench import same_ledger

CPU = torch.device("cpu")
CONFIGS = {"synthetic": ("dias", "synthetic"), "full-size": ("dias", "clevrtex")}


@pytest.fixture(scope="module")
def setups(tmp_path_factory):
    """(name, measuring) → [config, model, val split, uncached per-image ledger or None], built on first use."""
    built = {}

    def get(name, measuring):
        if name not in built:
            method, dataset = CONFIGS[name]
            images = {"synthetic": 256, "full-size": 32}[name] if measuring else {"synthetic": 16, "full-size": 1}[name]
            config = get_config(method, dataset)
            config = apply_overrides(config, [f"eval.batch_size={min(images, config.eval.batch_size)}"])
            torch.manual_seed(0)
            model = build_model(config, CPU, initial=False).eval()
            data = tmp_path_factory.mktemp(name)
            write_split(split_path(data, "synthetic", "val"), SynthConfig(resolution=config.resolution), "val", images)
            built[name] = [config, model, open_split(data, "synthetic", "val"), None]
        return built[name]

    return get


def run_eval(config, model, dataset):
    return evaluate(model, dataset, mask=config.eval.mask, protocol=DEFAULT_PROTOCOL, noise_seed=("bench",),
                    device=CPU, batch_size=config.eval.batch_size, amp=config.eval.amp,
                    resolution=config.eval.resolution)


@pytest.mark.parametrize("cache", ["off", "on"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_bench_eval_feature_cache(benchmark, setups, tmp_path, name, cache):
    setup = setups(name, measuring=not benchmark.disabled)
    config, model, val, reference = setup
    benchmark.group = f"eval-{name}"
    kw = dict(device=CPU, amp=config.eval.amp, batch_size=config.eval.batch_size)
    if cache == "on":
        with use_feature_cache(tmp_path, model, val, **kw) as (evaluated, use):
            cold = run_eval(config, model, evaluated).per_image  # the pass writing the cache is an uncached one
        assert use.status == "written"
        if reference is None:
            reference = cold
    with use_feature_cache(tmp_path if cache == "on" else None, model, val, **kw) as (evaluated, use):
        out = benchmark.pedantic(run_eval, args=(config, model, evaluated), rounds=3, iterations=1)
    assert cache == "off" or use.status == "hit"
    if reference is not None:
        assert same_ledger(out.per_image, reference)  # cached and uncached: the same per-image metrics
    setup[3] = out.per_image
    benchmark.extra_info["images"] = len(val)
    if benchmark.stats:
        benchmark.extra_info["images_per_s"] = len(val) / benchmark.stats.stats.mean
