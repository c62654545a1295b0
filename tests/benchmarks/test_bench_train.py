"""One training step per method on its synthetic config (random weights, fp32, the config's batch of 32; 4 when
benchmarks only run once as a smoke test), with the backbone run (`features=off`) or its output given as a feature
cache would (`on`, methods with a frozen backbone). Run with
`python -m pytest tests/benchmarks/test_bench_train.py --benchmark-enable --benchmark-group-by=group`."""

import pytest
import torch

from harness.nn.onednn import BACKENDS, cpu_linears, onednn_available
from harness.registry import get_config
from harness.run.feature_cache import frozen_backbone
from harness.run.train import build_model
from harness.tools.bench import train_step

CPU = torch.device("cpu")
CASES = [(m, f) for m in ("dias", "dinosaur", "slate", "slotdiffusion") for f in ("off", "on")] + [("sa", "off")]


@pytest.mark.parametrize(("method", "features"), CASES)
def test_bench_train_step(benchmark, method, features):
    overrides = ["train.amp=off"] + (["train.batch_size=4"] if benchmark.disabled else [])
    config = get_config(method, "synthetic", overrides)
    torch.manual_seed(0)
    model = build_model(config, CPU, initial=False)
    assert (frozen_backbone(model) is not None) == (method != "sa")
    images = torch.randn(config.train.batch_size, 3, config.resolution, config.resolution)
    step = train_step(model, config, images, CPU, cached=features == "on")
    step()  # step 0 runs at learning rate 0 (the authors' warm-up): the timed steps are 1, 2, ...
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    benchmark.group = f"train-{method}"
    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    after = [p for p in model.parameters() if p.requires_grad]
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))  # the timed steps trained
    benchmark.extra_info["batch_size"] = config.train.batch_size
    if benchmark.stats:
        benchmark.extra_info["images_per_s"] = config.train.batch_size / benchmark.stats.stats.mean


@pytest.mark.skipif(not onednn_available(), reason="this PyTorch build has no oneDNN linear")
@pytest.mark.parametrize("linear", BACKENDS)
def test_bench_full_size_dias_step_by_linear_kernels(benchmark, linear):
    """The full-size DIAS (clevrtex config, batch 8; 1 as a smoke test) with its linear layers through PyTorch's
    BLAS, which the authors' code runs on, and through oneDNN (harness.nn.onednn): one group, so the ratio reads
    directly."""
    batch = 1 if benchmark.disabled else 8
    config = get_config("dias", "clevrtex", ["train.amp=off", f"train.batch_size={batch}"])
    torch.manual_seed(0)
    model = build_model(config, CPU, initial=False)
    step = train_step(model, config, torch.randn(batch, 3, 256, 256), CPU, cached=False)
    step()  # step 0 runs at learning rate 0
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]

    def step_with_kernels():
        with cpu_linears(CPU, linear):
            step()

    benchmark.group = "train-dias-clevrtex-linear"
    benchmark.pedantic(step_with_kernels, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["batch_size"] = batch
    after = [p for p in model.parameters() if p.requires_grad]
    assert all(torch.isfinite(p).all() for p in after) and any(not torch.equal(a, b) for a, b in zip(before, after))
