"""The run layer: training, evaluation, checkpoints and result records for one cell (method × dataset × seed)."""
