"""The project's vocabularies: the valid values of every enumerated setting, and their limits.

Models, specs, the command line and the experiment files all take their choices from here.
"""

from __future__ import annotations

from spiking.data.preprocess.scaling import ZSCORE_MODES  # noqa: F401  (re-exported: the data layer owns it)
from spiking.specs import SpecError

#: snnTorch neuron models of the spiking CNNs (``snntorch.Leaky``, ``Lapicque``, ``RLeaky``, ``Synaptic``).
NEURONS = ("leaky", "lapicque", "rleaky", "synaptic")
#: Input encodings of the spiking CNN (``spiking.models.encoding``).
ENCODINGS = ("direct", "rate", "latency", "delta")
#: Default change (on the [0, 1] input scale) that triggers a delta event.
DELTA_THRESHOLD = 0.1
#: Upper bound of num_steps: the spikes of all steps of a layer are held in memory at once
#: (the study's largest was 90).
MAX_NUM_STEPS = 1000
#: Smallest side of a 2-D image the 2-D CNN_PT takes: its first stage needs a side >= 5
#: (``spiking.models.cnn.MIN_S1``), reached with ``wd1 = 2, h1 = 1`` from side 6.
MIN_SIDE_2D = 6
#: CNN_PT presets of the study (architectures in ``spiking.models.cnn.PRESETS``).
PRESET_NAMES = ("cnn_pt1", "cnn_pt2")
#: NengoDL spiking neuron types an snn_k conversion may use (``spiking.keras.conversion.NEURON_TYPES``).
NENGO_NEURONS = ("SpikingRectifiedLinear", "LIF", "RegularSpiking", "PoissonSpiking")


def check_encoding(encoding: str, delta_threshold: float = DELTA_THRESHOLD) -> None:
    """Raise ValueError for an unknown encoding or a delta threshold outside (0, 1]."""
    if encoding not in ENCODINGS:
        raise SpecError(f"unknown encoding {encoding!r}; valid: {', '.join(ENCODINGS)}")
    if isinstance(delta_threshold, bool):
        raise SpecError(f"delta threshold must be a number in (0, 1], got {delta_threshold!r}")
    t = float(delta_threshold)
    if not 0.0 < t <= 1.0:
        raise SpecError(f"delta threshold must be in (0, 1] (input scale), got {delta_threshold}")
