"""On a CUDA device (marked `cuda`, skipped elsewhere; scripts/gpu-check.sh runs them): the evaluation's masks-only
forward is exact there too, CUDA evaluation agrees with the CPU's, cached equals uncached, and an fp16 AMP step
gives finite losses."""

import pytest
import torch

from harness.data import open_split, split_path
from harness.data.synthetic import SynthConfig, write_split
from harness.metrics import DEFAULT_PROTOCOL
from harness.registry import get_config
from harness.run.evaluate import evaluate
from harness.run.feature_cache import use_feature_cache
from harness.run.train import build_model
from harness.tools.bench import same_ledger, train_step

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


def _dias(device, overrides=()):
    config = get_config("dias", "synthetic", list(overrides))
    torch.manual_seed(0)
    return config, build_model(config, device, initial=False).eval()


def _val(tmp_path, config, n=8):
    write_split(split_path(tmp_path, "synthetic", "val"), SynthConfig(resolution=config.resolution), "val", n)
    return open_split(tmp_path, "synthetic", "val")


def _eval(model, dataset, config, device, amp="off"):
    return evaluate(model, dataset, mask=config.eval.mask, protocol=DEFAULT_PROTOCOL, noise_seed=("cuda",),
                    device=device, batch_size=4, amp=amp)


def test_masks_only_is_exact_on_cuda():
    config, model = _dias(CUDA)
    images = torch.randn(4, 3, config.resolution, config.resolution, device=CUDA)
    with torch.inference_mode():
        torch.manual_seed(1)
        full = model(images)
        torch.manual_seed(1)
        with model.masks_only():
            fast = model(images)
    for name in full.masks:
        assert torch.equal(fast.masks[name], full.masks[name])


def test_cuda_evaluation_agrees_with_cpu_and_cache(tmp_path):
    config, model = _dias(torch.device("cpu"), ["eval_noise=mean"])  # no slot noise: the RNGs of CPU and CUDA differ
    val = _val(tmp_path, config)
    cpu = _eval(model, val, config, torch.device("cpu"))
    model.to(CUDA)
    gpu = _eval(model, val, config, CUDA)
    for key in ("ari", "mbo"):
        assert sum(abs(a - b) for a, b in zip(cpu.per_image[key], gpu.per_image[key])) / len(val) < 0.02
    kw = dict(device=CUDA, amp="off", batch_size=4)
    with use_feature_cache(tmp_path / "cache", model, val, **kw) as (evaluated, use):
        _eval(model, evaluated, config, CUDA)
    with use_feature_cache(tmp_path / "cache", model, val, **kw) as (evaluated, use):
        cached = _eval(model, evaluated, config, CUDA)
    assert use.status == "hit" and same_ledger(cached.per_image, gpu.per_image)


def test_fp16_amp_training_step_is_finite():
    config, model = _dias(CUDA, ["train.amp=fp16", "train.batch_size=8"])
    step = train_step(model, config, torch.randn(8, 3, config.resolution, config.resolution), CUDA, cached=False)
    for _ in range(3):
        step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_fp16_training_step_returns_the_unscaled_gradient_norm():
    """The one optimiser step under fp16 autocast and GradScaler (harness.run.step): the norm it returns is the
    gradients' after unscaling — what the clip sees and the log records —, not ×65536."""
    from harness.run.step import Stepper

    config, model = _dias(CUDA, ["train.amp=fp16", "train.batch_size=8", "train.grad_clip=1e9"])
    stepper = Stepper(model, config.train, CUDA, "fp16")
    images = torch.randn(8, 3, config.resolution, config.resolution, device=CUDA)
    assert stepper.scaler.is_enabled() and stepper.scaler.get_scale() > 1
    result = stepper(5, lambda: model(images).losses)
    unscaled = torch.linalg.vector_norm(torch.stack([p.grad.float().norm() for p in model.parameters()
                                                     if p.grad is not None]))
    assert float(result["grad_norm"]) == pytest.approx(float(unscaled), rel=1e-4)
