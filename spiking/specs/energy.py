"""Energy per inference under the 45 nm convention of spiking-network papers.

Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014:
in 45 nm CMOS with 32-bit floats one multiply-accumulate (MAC) costs 4.6 pJ and
one accumulate (AC) 0.9 pJ. An ANN's energy is its MACs x 4.6 pJ; an SNN's is the
MACs of the layer that receives non-spike input x 4.6 pJ plus its synaptic
operations (input spikes x fan-out, summed over time steps and layers) x 0.9 pJ.
Memory traffic (reading weights, membrane states and spikes) is NOT counted by this
convention, nor are neuron updates or biases; on real hardware it often dominates.
"""

from __future__ import annotations

from spiking.specs import SpecError

__all__ = ["E_MAC_PJ", "E_AC_PJ", "CONVENTION", "energy_pj"]

#: Energy of one 32-bit float multiply-accumulate in 45 nm CMOS, picojoules (Horowitz 2014).
E_MAC_PJ = 4.6
#: Energy of one 32-bit float accumulate in 45 nm CMOS, picojoules (Horowitz 2014).
E_AC_PJ = 0.9
#: One line naming the convention; printed wherever an energy figure is shown.
CONVENTION = ("45 nm CMOS, 32-bit float (Horowitz, ISSCC 2014): MAC 4.6 pJ, AC 0.9 pJ; "
              "memory traffic is not counted")


def energy_pj(macs: float, acs: float) -> float:
    """Energy in picojoules of ``macs`` multiply-accumulates and ``acs`` accumulates.

    Raises:
        ValueError: a negative count.
    """
    if macs < 0 or acs < 0:
        raise SpecError(f"operation counts must be >= 0, got macs={macs}, acs={acs}")
    return float(macs) * E_MAC_PJ + float(acs) * E_AC_PJ
