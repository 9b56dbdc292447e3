"""The project's vocabularies: the valid values of every enumerated setting, and their limits.

Models, specs, the command line and the experiment files all take their choices from here.
"""

from __future__ import annotations

from spiking.data.layout.state import MAX_SEED  # noqa: F401  (re-exported: the data layer owns it)
from spiking.data.preprocess.scaling import ZSCORE_MODES  # noqa: F401  (re-exported: the data layer owns it)
from spiking.data.preprocess.split import DEFAULT_FOLDS, MAX_FOLDS, MIN_FOLDS  # noqa: F401  (re-exported)
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
#: How a spiking CNN gets its weights: from the trained CNN then fine-tuned (``transfer``), trained from
#: random initialisation (``scratch``), or converted from a QCFS-trained CNN with no training
#: (``convert``; ``spiking.models.qcfs``, Bu et al. 2022).
SNN_MODES = ("transfer", "scratch", "convert")
#: Activations of the CNN: ``relu`` (the study's) or ``qcfs`` (``spiking.models.qcfs.QCFS``).
CNN_ACTIVATIONS = ("relu", "qcfs")
#: Quantisation levels of a QCFS activation (Bu et al. train with 2 to 16; 1 is a binary activation).
MIN_LEVELS, MAX_LEVELS = 1, 256
#: Default QCFS levels: the converted network's natural number of time steps.
QCFS_LEVELS = 4
#: Percentile of a layer's positive input that its QCFS threshold starts at. 90 rather than the 99.9 of
#: data-based normalisation: with 4 levels a high threshold rounds most activations to 0 at the start,
#: and on the 28-cohort task such a network did not learn at all (measured; README).
QCFS_PERCENTILE = 90.0
#: Loss of the spiking CNN on its output spike counts (cross-entropy or mean squared error).
SNN_LOSSES = ("ce", "mse")
#: Default membrane decay per time step: 1.0 = integrate-and-fire (no leak), the neuron of
#: rate-based weight transfer (Diehl et al. 2015; Rueckauer et al. 2017).
BETA = 1.0
#: Where training runs: ``auto`` picks a CUDA GPU when torch sees one.
DEVICES = ("auto", "cpu", "cuda")
#: Default time steps per sample.
NUM_STEPS = 10
#: Shards folder written by ``spiking ingest`` when none is given (the Makefile's SHARDS agrees: tested).
DEFAULT_SHARDS = "data/shards/tcga-mirna-rpm"

#: NengoDL spiking neuron types an snn_k conversion may use (``spiking.keras.conversion.NEURON_TYPES``).
NENGO_NEURONS = ("SpikingRectifiedLinear", "LIF", "RegularSpiking", "PoissonSpiking")


def is_int(v, low: int | None = None, high: int | None = None) -> bool:
    """True for a Python or numpy integer (not a bool) in ``[low, high]``."""
    import numbers

    return (isinstance(v, numbers.Integral) and not isinstance(v, bool) and (low is None or v >= low)
            and (high is None or v <= high))


def is_real(v) -> bool:
    """True for a finite int or float (not a bool)."""
    import math
    import numbers

    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def check_num_steps(num_steps, what: str = "num_steps", *, bounded: bool = True) -> int:
    """``num_steps`` as an int; SpecError unless it is an integer >= 1 (bools and floats such as 2.5
    or 3.0 refused) and, when ``bounded`` (the run settings), <= :data:`MAX_NUM_STEPS` (the spikes of
    every step are held in memory at once). The models check unbounded."""
    if not is_int(num_steps, 1):
        raise SpecError(f"{what} must be an integer >= 1, got {num_steps!r} ({type(num_steps).__name__})")
    if bounded and num_steps > MAX_NUM_STEPS:
        raise SpecError(f"{what} must be in [1, {MAX_NUM_STEPS}], got {num_steps!r} (the spikes of every step are "
                        "held in memory at once)")
    return int(num_steps)


def check_beta(beta, neuron: str = "leaky", what: str = "beta") -> float:
    """``beta`` as a float; SpecError unless it is a number in [0, 1], and in (0, 1) for the Lapicque
    neuron (snnTorch derives its capacitance C = 1/ln(1/beta), infinite at 1 and 0 at 0)."""
    if not is_real(beta) or not 0.0 <= beta <= 1.0:
        raise SpecError(f"{what} (membrane decay per step) must be a number in [0, 1], got {beta!r}")
    if neuron == "lapicque" and not 0.0 < beta < 1.0:
        raise SpecError(f"the Lapicque neuron needs 0 < {what} < 1 (snnTorch derives C = 1/ln(1/beta)), got {beta}; "
                        "e.g. beta 0.9 (--beta 0.9)")
    return float(beta)


def check_encoding(encoding: str, delta_threshold: float = DELTA_THRESHOLD) -> None:
    """Raise ValueError for an unknown encoding or a delta threshold outside (0, 1]."""
    if encoding not in ENCODINGS:
        raise SpecError(f"unknown encoding {encoding!r}; valid: {', '.join(ENCODINGS)}")
    if isinstance(delta_threshold, bool):
        raise SpecError(f"delta threshold must be a number in (0, 1], got {delta_threshold!r}")
    t = float(delta_threshold)
    if not 0.0 < t <= 1.0:
        raise SpecError(f"delta threshold must be in (0, 1] (input scale), got {delta_threshold}")
