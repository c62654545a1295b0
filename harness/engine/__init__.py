"""Orchestration (docs/architecture.md#layers): `reproduce` runs a table's missing cells through one engine
(harness.engine.core) and renders its report; each kind of table is one `Task` implementation."""

from harness.engine.core import TASKS, Cell, Rendered, ReproduceError, ReproduceOptions, plan, reproduce
from harness.engine.discovery import DiscoveryTask
from harness.engine.recognition import RecognitionTask

TASKS.update(discovery=DiscoveryTask, recognition=RecognitionTask)

__all__ = ["Cell", "Rendered", "ReproduceError", "ReproduceOptions", "plan", "reproduce"]
