"""CPU recipes: what every method's small configs share on one data set — image size, slot count, the frozen backbone
and the step budget — in one place, so that the methods of a CPU table differ only where the methods differ.

random_vit        the `synthetic` data set (32² flat shapes) on a frozen, randomly initialised tiny ViT: a fast
                  pipeline check (the `mini-random` and `mini-ci` tables), not a learning result
pretrained_dinov2 the `textured` data set on a real pretrained DINOv2-S/14 with cached features: the `mini` table
"""
