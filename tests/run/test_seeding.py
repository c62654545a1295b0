"""Data-loader randomness: per-sample streams by default (independent of workers and resumable), the authors'
same-seed-per-worker streams in faithful mode; batch order a function of (seed, epoch) alone."""

import random

import torch
from torch.utils.data import Dataset

from harness.run.loader import ResumableBatches, train_loader
from harness.run.seeding import derive_seed, rng_state, seed_everything, set_rng_state


class Draws(Dataset):
    """Each item is what an augmentation would draw: a torch number (crop) and a python number (flip)."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return {"i": torch.tensor(i), "t": torch.rand(()), "p": torch.tensor(random.random())}


def collate(items):
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def epoch(loader, position, e, start=0):
    position(e, start)
    return [b for b in loader]


def test_per_sample_streams_do_not_depend_on_workers_or_resume():
    out = {}
    for workers in (0, 2):
        loader, position = train_loader(Draws(), batch_size=4, seed=5, num_workers=workers, collate_fn=collate)
        out[workers] = epoch(loader, position, 0)
    for a, b in zip(out[0], out[2]):
        assert all(torch.equal(a[k], b[k]) for k in a)
    # resumed at batch 2 of epoch 0: the same batches as the uninterrupted epoch from there
    loader, position = train_loader(Draws(), batch_size=4, seed=5, num_workers=0, collate_fn=collate)
    resumed = epoch(loader, position, 0, start=2)
    assert len(resumed) == 1 and all(torch.equal(resumed[0][k], out[0][2][k]) for k in resumed[0])
    # distinct draws per sample and per epoch
    values = torch.cat([b["t"] for b in out[0]])
    assert len(set(values.tolist())) == 12
    other_epoch = torch.cat([b["t"] for b in epoch(loader, position, 1)])
    assert not torch.equal(values.sort().values, other_epoch.sort().values)


def test_per_sample_seeding_leaves_the_callers_streams_alone():
    seed_everything(0)
    expected = (torch.rand(3), random.random())
    seed_everything(0)
    loader, position = train_loader(Draws(), batch_size=4, seed=5, num_workers=0, collate_fn=collate)
    epoch(loader, position, 0)
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]


def test_faithful_mode_gives_every_worker_the_same_stream():
    loader, position = train_loader(Draws(), batch_size=2, seed=5, num_workers=2, collate_fn=collate,
                                    worker_seeding="faithful")
    batches = epoch(loader, position, 0)
    # worker w takes batches w, w+2, …: both workers start from seed 5, so batch 0 and batch 1 draw alike
    assert torch.equal(batches[0]["t"], batches[1]["t"]) and torch.equal(batches[0]["p"], batches[1]["p"])
    assert not torch.equal(batches[0]["i"], batches[1]["i"])


def test_batch_order_is_a_function_of_seed_and_epoch():
    a, b = ResumableBatches(10, 3, seed=1), ResumableBatches(10, 3, seed=1)
    a.set_position(2, 0)
    b.set_position(2, 1)
    full = list(a)
    assert [len(x) for x in full] == [3, 3, 3, 1] and sorted(sum(full, [])) == list(range(10))  # drop_last=False
    assert list(b) == full[1:] and len(b) == 3
    a.set_position(3, 0)
    assert list(a) != full


def test_rng_state_round_trip_through_weights_only_load(tmp_path):
    seed_everything(3)
    state = rng_state()
    torch.save(state, tmp_path / "s.pt")
    expected = (torch.rand(2), random.random(), __import__("numpy").random.rand())
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True))
    assert torch.equal(torch.rand(2), expected[0]) and random.random() == expected[1]
    assert __import__("numpy").random.rand() == expected[2]
    assert derive_seed(1, "a") == derive_seed(1, "a") != derive_seed(1, "b")
