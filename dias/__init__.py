"""DIAS (Slot Attention with Re-Initialization and Self-Distillation) as released at Genera1Z/DIAS 06e8039, plus the
paper's pruning/re-initialisation as an opt-in extension. Importing the package registers method "dias"."""

from dias.configs import NUM_SLOTS, DIASConfig, build
from dias.extension import ExtensionConfig
from dias.model import DIAS

__all__ = ["DIAS", "DIASConfig", "ExtensionConfig", "NUM_SLOTS", "build"]
