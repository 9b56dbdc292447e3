"""Which of the two environments this process runs in, and clear errors when it is the wrong one.

The PyTorch/snnTorch code runs in ``.venv`` (``make install``), the Keras/NengoDL code
(``spiking nas``, the ``snn_k`` experiment) in ``.venv-nengo`` (``make install-nengo``):
NengoDL 3.6.0 needs tensorflow 2.12.1 and numpy < 1.25, which the torch stack's pins exclude.
"""

from __future__ import annotations

import importlib.util
import os

from spiking.errors import SpikingError

HINTS = {
    "torch": "it runs in the PyTorch environment: make install, then .venv/bin/spiking (or make tune EXP=...)",
    "nengo": "it runs in the Keras/NengoDL environment: make install-nengo, then .venv-nengo/bin/spiking "
             "(or make tune EXP=snn_k / make nas)",
}
_MODULES = {"torch": ("torch", "snntorch"), "nengo": ("tensorflow", "nengo", "nengo_dl")}


class EnvironmentMismatch(SpikingError):
    """The command needs the other environment's frameworks (torch vs TensorFlow/NengoDL)."""


def available(environment: str) -> bool:
    """True if every framework of ``environment`` ("torch" or "nengo") can be imported here."""
    return all(importlib.util.find_spec(m) is not None for m in _MODULES[environment])


def require(environment: str, what: str) -> None:
    """Raise :class:`EnvironmentMismatch` naming ``what`` and the right environment unless
    ``environment``'s frameworks are importable in this Python."""
    if not available(environment):
        missing = [m for m in _MODULES[environment] if importlib.util.find_spec(m) is None]
        raise EnvironmentMismatch(f"{what} needs {', '.join(missing)}, which this Python does not have: {HINTS[environment]}")


def prepare_nengo_process() -> None:
    """Environment variables the Keras/NengoDL processes need before ray or TensorFlow is imported:
    ``RAY_TRAIN_V2_ENABLED=0`` (ray.train v2 needs pydantic 2, whose typing-extensions >= 4.6
    tensorflow 2.12 refuses; Ray Tune works without it) and quieter TensorFlow logs."""
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
