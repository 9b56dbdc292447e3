"""The report's summary table (the study's Table II, extended) and the formatting helpers
the sections share: SI counts, percentages, energy units, what each network is."""

from __future__ import annotations

import re

from spiking.evaluation.baseline import is_baseline
from spiking.report.inputs import ReportInputs
from spiking.report.render import Section, Table

DEFAULT_CONVENTION = ("45 nm CMOS, 32-bit float (Horowitz, ISSCC 2014): MAC 4.6 pJ, AC 0.9 pJ; "
                      "memory traffic is not counted")


def safe_name(name: str) -> str:
    """``name`` with every run of characters other than letters, digits, ``_.-`` replaced by ``_`` (for file names)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def si(x: float | None, digits: int = 3) -> str:
    """A count with an SI suffix: 1234567 -> '1.23M'; None -> '-'."""
    if x is None:
        return "-"
    x = float(x)
    for div, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.{digits}g}{suf}"
    return f"{x:.{digits}g}"


def pct(x) -> str:
    """A fraction as a percentage with 2 decimals: 0.7312 -> '73.12'; None -> '-'."""
    return "-" if x is None else f"{100 * float(x):.2f}"


def energy_unit(values_pj: list[float]) -> tuple[str, float]:
    """``(unit, divisor)`` so that the largest energy in ``values_pj`` (pJ) reads between 1 and 1000."""
    top = max((abs(v) for v in values_pj), default=0.0)
    for unit, div in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if top >= div:
            return unit, div
    return "pJ", 1.0


def ops_cell(entry: dict) -> str:
    """MACs (CNN) or synaptic operations (+ first-layer MACs) per inference of a model entry; '-' if unknown."""
    eff = entry.get("efficiency")
    if not isinstance(eff, dict):
        return "-"
    macs, synops = eff.get("macs"), eff.get("synops")
    spiking = "snn" in entry or eff.get("encoding") is not None or eff.get("num_steps") is not None
    if spiking:
        if synops is None:
            return "-"
        return f"{si(synops)} SynOps" + (f" + {si(macs)} MACs" if macs else "")
    return "-" if macs is None else f"{si(macs)} MACs"


def describe(entry: dict, run_cfg: dict | None) -> str:
    """The network column of the summary table: the entry's name and what it is (neuron, steps, encoding, layout)."""
    name = str(entry["name"])
    if is_baseline(entry):
        b = entry.get("baseline") if isinstance(entry.get("baseline"), dict) else {}
        chosen = ", ".join(f"{k}={v}" for k, v in (b.get("chosen") or {}).items())
        return f"{name} (baseline" + (f": {b['method']}" if b.get("method") else "") + (f", {chosen}" if chosen else "") + ")"
    s = entry.get("snn")
    if isinstance(s, dict) and is_converted(entry):
        bits = [str(s.get("neuron", "?")), f"{s.get('num_steps', s.get('n_steps'))} steps"]
        if s.get("synapse") is not None:
            bits.append(f"synapse {float(s['synapse']):g} s" if s["synapse"] else "no synapse filter")
        if s.get("scale_firing_rates") is not None:
            bits.append(f"firing rates x{float(s['scale_firing_rates']):g}")
        return f"{name} (NengoDL conversion: {', '.join(bits)})"
    if isinstance(s, dict):
        eff = entry.get("efficiency") if isinstance(entry.get("efficiency"), dict) else {}
        bits = [str(s.get("neuron", "?")), f"beta {s.get('beta')}", f"{s.get('num_steps')} steps"]
        if s.get("mode") == "convert":
            bits.insert(0, "QCFS conversion, fine-tuned" if s.get("finetuned") else "QCFS conversion, no training")
        encoding = eff.get("encoding") or s.get("encoding")  # an entry without efficiency still names it
        if encoding:
            bits.append(f"{encoding} input")
        if encoding == "delta" and s.get("delta_threshold") is not None:
            bits.append(f"delta threshold {float(s['delta_threshold']):g}")
        if s.get("population", 1) not in (1, None):
            bits.append(f"population {s['population']}")
        return f"{name} ({', '.join(bits)})"
    preset = ((run_cfg or {}).get("cnn") or {}).get("preset")
    # a grammar-search CNN_K names its phenotype (a string); a CNN_PT its sizes (a dict)
    if isinstance(entry.get("architecture"), str) or str(entry.get("source") or "").endswith(".keras"):
        return f"{name} (Keras)"
    layout = entry.get("layout") if isinstance(entry.get("layout"), dict) else {}
    where = ""
    if layout.get("name") not in (None, "identity"):
        where = f", {layout['name']} {'x'.join(map(str, layout.get('input_shape') or []))}"
    act = entry.get("activation") if isinstance(entry.get("activation"), dict) else {}
    if act.get("name") == "qcfs":
        where += f", QCFS {act.get('levels')} levels"
    if preset and name == "cnn":
        return f"{name} ({preset}{where})"
    return f"{name} (CNN_PT{where})" if isinstance(entry.get("architecture"), dict) else name


def is_converted(entry: dict) -> bool:
    """A spiking network converted from a trained network (NengoDL), not trained itself."""
    s = entry.get("snn")
    return isinstance(s, dict) and s.get("framework") == "nengo-dl"


def convention(results: dict) -> str:
    """The energy convention the first model entry names, else :data:`DEFAULT_CONVENTION`."""
    for m in results["models"]:
        c = (m.get("efficiency") or {}).get("convention") if isinstance(m.get("efficiency"), dict) else None
        if c:
            return str(c)
    return DEFAULT_CONVENTION


def summary_table(results: dict, run_cfg: dict | None = None) -> Table:
    """The extended Table II: one row per results.json model entry (baseline included).

    Columns: network, test accuracy, balanced accuracy, macro-F1 (%), parameters,
    training time (s), MACs or SynOps per inference, energy per inference (unit
    chosen for the largest value, named in the header; no unit when no entry has an
    energy), SNN/CNN energy ratio. A value
    a model entry does not have (no ``efficiency`` block: old runs, the baseline) is '-'.
    """
    energies = [float(m["efficiency"]["energy_pj"]) for m in results["models"]
                if isinstance(m.get("efficiency"), dict) and m["efficiency"].get("energy_pj") is not None]
    unit, div = energy_unit(energies)
    header = ["network", "test accuracy (%)", "balanced accuracy (%)", "macro-F1 (%)", "parameters",
              "training time (s)", "MACs or SynOps / inference",
              f"energy / inference ({unit})" if energies else "energy / inference", "energy vs CNN"]
    rows = []
    for m in results["models"]:
        t = m.get("test") or {}
        eff = m.get("efficiency") if isinstance(m.get("efficiency"), dict) else {}
        e = eff.get("energy_pj")
        ratio = eff.get("energy_ratio_vs_cnn")
        params = m.get("parameters")
        secs = m.get("train_seconds")
        secs_cell = ("0 (converted)" if is_converted(m) and not secs else
                     f"{float(secs):.1f}" if secs is not None else "-")
        rows.append([describe(m, run_cfg), pct(t.get("accuracy")), pct(t.get("balanced_accuracy")),
                     pct(t.get("macro_f1")), f"{int(params):,}" if params is not None else "-",
                     secs_cell, ops_cell(m),
                     f"{float(e) / div:.4g}" if e is not None else "-",
                     f"{float(ratio):.3g}" if ratio is not None else "-"])
    caption = ("Held-out test split, scored once. Energy per inference, mean over the test samples: "
               + convention(results) + ". Energy vs CNN: the network's energy divided by the CNN's."
               if energies else
               "Held-out test split, scored once. No energy estimate recorded in this results.json ('-').")
    if any(is_converted(m) for m in results["models"]):
        caption += (" The NengoDL conversions were not trained (training time 0): their weights are those of the "
                    "Keras CNN they were converted from.")
    from spiking.evaluation.summary import best_baseline

    bases = {str(m["name"]): {"run": m} for m in results["models"] if is_baseline(m)}
    best, how = best_baseline(bases)
    if best:
        caption += (f" Best classic baseline on this split: {best} ({how}; each baseline tuned on the "
                    "validation part).")
    return Table(header, rows, caption)


def section_summary(inp: ReportInputs) -> Section:
    """The summary section: :func:`summary_table` of the folder's results.json."""
    sec = Section("Summary (the study's Table II, extended)")
    sec.add(summary_table(inp.results, inp.config))
    return sec



__all__ = ["summary_table", "ops_cell", "energy_unit", "si"]
