"""Sections of the NengoDL conversion experiment (``spiking tune snn_k``): no training
curves (nothing was trained), the study's activity.png with the firing rate per layer,
and the converter's notes."""

from __future__ import annotations

import shutil
from pathlib import Path

from spiking.report import figures as fg
from spiking.report.inputs import ReportInputs, is_num
from spiking.report.render import PNG_MAGIC, Bullets, Image, Note, Section, Text
from spiking.report.tables import is_converted, safe_name


def _nas_report_hint(inp: ReportInputs) -> str:
    """Where the converted networks' Keras CNN was trained (the nas search folder), for the report's text."""
    src = str(((inp.experiment or {}).get("weights") or {}).get("source") or "")
    if not src:
        src = next((str(m["source"]) for m in inp.results["models"] if m.get("source")), "")
    if src.endswith(".keras"):
        folder = src.rsplit("/", 1)[0] if "/" in src else "."
        return f"{src}; its training is in the report of that architecture search (`spiking report {folder}`)"
    return "its training is in the report of the architecture search (`spiking nas`) that found it"


def section_training(inp: ReportInputs) -> Section:
    """What stands in for the training curves: nothing was trained, the networks are conversions."""
    names = ", ".join(str(m["name"]) for m in inp.results["models"] if is_converted(m))
    return Section("Training").add(Text(
        f"Nothing was trained in this experiment: the spiking networks ({names}) are NengoDL conversions of the "
        f"trained Keras CNN (cnn_k) and keep its weights; each trial only chose how to convert and simulate it "
        f"(neuron type, synapse, time steps, firing-rate scale). The Keras CNN is {_nas_report_hint(inp)}."))


def section_activity_converted(inp: ReportInputs, out: Path) -> Section | None:
    """activity.png of the experiment (copied into the report) and the firing rate per layer of each conversion."""
    spiking = [m for m in inp.results["models"] if is_converted(m)]
    src = inp.root / "activity.png"
    if not spiking and not src.is_file():
        return None
    sec = Section("Spiking activity")
    if not src.is_file():
        sec.add(Note("activity.png is not in the experiment folder, so no layer activity figure."))
    elif not src.read_bytes()[:8] == PNG_MAGIC:
        sec.add(Note("activity.png in the experiment folder is not a PNG file; skipped."))
    else:
        shutil.copyfile(src, out / "activity.png")
        best = (inp.results.get("search") or {}).get("best") or {}
        cfg = best.get("config") if isinstance(best.get("config"), dict) else {}
        scale = cfg.get("scale_firing_rates")
        shown = (float(scale) if is_num(scale) and float(scale) > 1 else 300.0) if scale is not None else None
        syn = cfg.get("synapse")
        syn = f"synapse {float(syn):g} s" if is_num(syn) and syn else "no synapse filter"
        what = (f" ({cfg.get('neuron')} neurons, {syn}, {cfg.get('num_steps', cfg.get('n_steps'))} steps of 1 ms)"
                if cfg.get("neuron") else "")
        sec.add(Image(out / "activity.png",
                      "The experiment's activity.png (drawn by `spiking tune snn_k`): one test sample run through the "
                      f"converted network with the best trial's settings{what}, at firing-rate scale 1 (left) and "
                      + (f"at scale {shown:g} (right). " if shown is not None else
                         "at the best trial's scale (right). ")
                      + "Each panel above the last row is a spike raster of one converted ReLU layer, showing at most "
                        "30 neurons, those that spike most at the larger scale (the same ones in both columns); its "
                        "title gives the layer's mean firing rate over all its neurons and its spike count. The last "
                        "row shows the output logits over time. At scale 1 the ReLU activations (of order 1) give "
                        "about one spike per neuron per second, so the network hardly spikes in the simulated time and "
                        "its output is noise; scaling the firing rates (Rueckauer et al. 2017), with the output "
                        "amplitude divided by the same factor, makes the layers spike while keeping the expected "
                        "output."))
    for m in spiking:
        name = str(m["name"])
        hz = m.get("firing_rates_hz")
        if not hz:
            sec.add(Note(f"{name}: results.json records no firing_rates_hz."))
            continue
        s = m.get("snn") or {}
        p = fg.firing_rates({str(k): float(v) for k, v in hz.items()}, out / f"rates_{safe_name(name)}.png",
                            title=f"{name}: firing rate per layer", ylabel="firing rate (Hz)", fmt="{:.1f}")
        mean = m.get("mean_firing_rate_hz")
        sec.add(Image(p, f"{name}: mean firing rate of each converted layer's neurons on the test split, in Hz "
                         "(results.json firing_rates_hz"
                         + (f"; mean of the layers {float(mean):.1f} Hz" if mean is not None else "")
                         + f"). {s.get('neuron', '?')} neurons, {s.get('num_steps', s.get('n_steps', '?'))} steps, firing rates "
                           f"x{s.get('scale_firing_rates', '?')}; with NengoDL's 1 ms step, 100 Hz is 0.1 spike per "
                           "neuron per time step."))
    return sec


def section_conversion_notes(inp: ReportInputs) -> Section | None:
    """How NengoDL converted each layer (results.json conversion_notes), the notes common to all first;
    None when no conversion recorded any."""
    notes = {str(m["name"]): [str(n) for n in m.get("conversion_notes") or []]
             for m in inp.results["models"] if is_converted(m)}
    notes = {k: v for k, v in notes.items() if v}
    if not notes:
        return None
    sec = Section("Conversion notes")
    sec.add(Text("How NengoDL's converter treated each layer of the Keras CNN (results.json conversion_notes)."))
    lists = list(notes.values())
    common = [n for n in lists[0] if all(n in other for other in lists[1:])]
    if len(notes) > 1 and common:
        sec.add(Bullets(common, lead=f"All conversions ({', '.join(notes)}):"))
    for name, items in notes.items():
        rest = [n for n in items if n not in common] if len(notes) > 1 else items
        if rest:
            sec.add(Bullets(rest, lead=f"{name}" + (" only:" if len(notes) > 1 and common else ":")))
    return sec

