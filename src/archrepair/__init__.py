"""archrepair: block-level, architecture-oriented repair of trained PyTorch image classifiers."""

__version__ = "0.1.0"

from .checkpoint import load, load_checkpoint, save_checkpoint  # noqa: E402
from .errors import ArchRepairError  # noqa: E402
from .models import default_blocks, get_model, list_models  # noqa: E402

__all__ = [
    "ArchRepairError", "__version__", "default_blocks", "get_model", "list_models", "load", "load_checkpoint",
    "save_checkpoint",
]
