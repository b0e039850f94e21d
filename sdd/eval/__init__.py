"""Edit-quality evaluation (editability, preservation, background fidelity, speed) and the
SDEdit baseline that runs through the same evaluation."""

from .metrics import EditReport, breakdown, evaluate
from .sdedit import SDEditEditor

__all__ = ["EditReport", "SDEditEditor", "breakdown", "evaluate"]
