"""The tiny DIAS recipe of the run-layer tests, in a module of its own: `from conftest import ...` would import
whichever tests/*/conftest.py was collected last, so a subset run in another order (`pytest tests/run tests/dias`)
failed to collect."""

TINY = ["train.steps=12", "train.batch_size=8", "train.warmup_steps=2", "train.val_interval=6",
        "train.checkpoint_interval=3", "train.num_workers=0", "train.val_limit=8", "eval.batch_size=8",
        "num_slots=3"]
