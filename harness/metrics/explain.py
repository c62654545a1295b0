"""What a number computed under a protocol means, in words: the segmentation protocols and the object-recognition
probe's (`python -m harness metrics explain [PROTOCOL]`)."""

from __future__ import annotations

from harness.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOLS
from harness.metrics.recognition import DEFAULT_RECOGNITION_PROTOCOL, RECOGNITION_PROTOCOLS
from harness.names import UnknownNameError

GROUPS = (("segmentation", PROTOCOLS, DEFAULT_PROTOCOL),
          ("object recognition (slot probe)", RECOGNITION_PROTOCOLS, DEFAULT_RECOGNITION_PROTOCOL))


def explain(protocol: str | None = None) -> str:
    """The list of protocols with their one-line summaries (None), or one protocol's choices in words."""
    if protocol is None:
        width = max(len(name) for _, registry, _ in GROUPS for name in registry.names())
        lines = []
        for title, registry, default in GROUPS:
            lines.append(f"{title}:")
            for name in registry.names():
                mark = " (default)" if name == default else ""
                lines.append(f"  {name:<{width}}  {registry.get(name).summary}{mark}")
        lines.append("\n`python -m harness metrics explain NAME` prints a protocol's choices.")
        return "\n".join(lines)
    for _, registry, _ in GROUPS:
        if protocol in registry:
            return registry.get(protocol).explain()
    valid = sorted(name for _, registry, _ in GROUPS for name in registry.names())
    raise UnknownNameError(f"unknown protocol {protocol!r}; valid: {', '.join(valid)}")
