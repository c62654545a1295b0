"""Trivial reference rows: grid, single segment, colour k-means."""

import pytest
import torch
from sklearn.cluster import KMeans

from baselines.common import BaselineConfigError
from baselines.reference import kmeans_pp_init, lloyd, near_square_grid
from harness.registry import METHODS, create_model, get_config


@pytest.mark.parametrize("n,shape", [(1, (1, 1)), (2, (1, 2)), (4, (2, 2)), (5, (2, 3)), (6, (2, 3)), (7, (2, 3)),
                                     (9, (3, 3)), (11, (3, 4)), (12, (3, 4))])
def test_near_square_grid(n, shape):
    assert near_square_grid(n) == shape


def test_grid_cells_by_hand():
    model = create_model("grid", "coco", num_slots=6)  # 2 rows × 3 columns
    masks = model(torch.zeros(2, 3, 4, 6)).masks["grid"]
    assert masks.shape == (2, 6, 4, 6)
    labels = masks.argmax(1)[0]
    assert labels.tolist() == [[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5], [3, 3, 4, 4, 5, 5]]
    assert torch.equal(masks.sum(1), torch.ones(2, 4, 6))


def test_grid_needs_a_near_square_cell_count():
    with pytest.raises(BaselineConfigError, match="3×4"):
        create_model("grid", "coco", num_slots=11)


def test_single_segment():
    masks = create_model("single-segment", "voc")(torch.randn(3, 3, 8, 8)).masks["grid"]
    assert masks.shape == (3, 1, 8, 8) and bool((masks == 1).all())


def flat_colour_image(k=4, size=32, seed=0):
    """k flat colours in vertical bands of unequal widths; returns the image and its true labels."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.randn(k, 3, generator=g) * 2
    bounds = torch.linspace(0, size, k + 1).round().long()
    labels = torch.zeros(size, size, dtype=torch.long)
    for i in range(k):
        labels[:, bounds[i]:bounds[i + 1]] = i
    labels = labels.T.contiguous() if seed % 2 else labels
    return colours[labels].permute(2, 0, 1), labels


def same_partition(a, b):
    pairs = set(zip(a.flatten().tolist(), b.flatten().tolist()))
    return len(pairs) == len(set(a.flatten().tolist())) == len(set(b.flatten().tolist()))


def test_kmeans_recovers_k_flat_colours():
    images, truth = zip(*(flat_colour_image(4, seed=s) for s in range(3)))
    model = create_model("colour-kmeans", "synthetic", num_slots=4)
    masks = model(torch.stack(images)).masks["clustering"]
    assert masks.shape == (3, 4, 32, 32) and torch.equal(masks.sum(1), torch.ones(3, 32, 32))
    for m, t in zip(masks.argmax(1), truth):
        assert same_partition(m, t)


def test_kmeans_fitted_on_a_subsample_still_labels_every_pixel():
    image, truth = flat_colour_image(5, size=64, seed=1)
    model = create_model("colour-kmeans", "coco", num_slots=5, fit_pixels=256)  # every 4th row and column
    labels = model(image[None]).masks["clustering"].argmax(1)[0]
    assert same_partition(labels, truth)


def test_lloyd_matches_sklearn_from_the_same_seeds():
    g = torch.Generator().manual_seed(0)
    points = torch.cat([torch.randn(200, 3, generator=g) * 0.3 + c for c in torch.randn(5, 3, generator=g) * 2])
    init = kmeans_pp_init(points, 5, torch.Generator().manual_seed(3))
    labels, centres = lloyd(points[None].double(), init[None].double(), 100)
    ref = KMeans(5, init=init.double().numpy(), n_init=1, max_iter=100, tol=0, algorithm="lloyd").fit(
        points.double().numpy())
    assert torch.equal(labels[0], torch.from_numpy(ref.labels_).long())
    assert torch.allclose(centres[0], torch.from_numpy(ref.cluster_centers_), atol=1e-9)


def test_kmeans_per_image_result_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    images = torch.randn(4, 3, 16, 16)
    model = create_model("colour-kmeans", "coco")
    batch = model(images).masks["clustering"]
    alone = model(images[2:3]).masks["clustering"]
    assert torch.equal(batch[2:3], alone)
    assert torch.equal(model(images).masks["clustering"], batch)


def test_kmeans_xy_weight_splits_a_flat_image_spatially():
    image = torch.zeros(1, 3, 16, 16)
    colour_only = create_model("colour-kmeans", "synthetic", num_slots=2)(image).masks["clustering"]
    assert colour_only.argmax(1).unique().numel() == 1  # one colour: a single non-empty cluster
    with_xy = create_model("colour-kmeans", "synthetic", num_slots=2, xy_weight=1.0)(image).masks["clustering"]
    labels = with_xy.argmax(1)[0]
    assert labels.unique().numel() == 2 and (labels.sum(0).bool() | labels.sum(1).bool()).all()


@pytest.mark.parametrize("name", ["grid", "single-segment", "colour-kmeans"])
def test_registered_as_reference_for_every_dataset(name):
    spec = METHODS.get(name)
    assert spec.kind == "reference" and set(spec.configs) == {"clevrtex", "coco", "voc", "synthetic", "textured"}
    assert get_config(name, "clevrtex").num_slots == {"grid": 12, "single-segment": 1, "colour-kmeans": 11}[name]
    assert get_config(name, "clevrtex").eval.mask == {"grid": "grid", "single-segment": "grid",
                                                      "colour-kmeans": "clustering"}[name]
    assert not list(create_model(name, "voc").parameters())
