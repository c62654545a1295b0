"""Shared building blocks of the methods: Slot Attention, initialisers, MLPs, positional embeddings,
the DINOv2 backbone (HF transformers with the authors' timm key layout) and checkpoint I/O."""
