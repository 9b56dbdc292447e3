"""The spiking activity section: the saved spiking networks re-run on one test sample
(spike raster, membrane traces) and their firing rate per layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spiking.report import figures as fg
from spiking.report.inputs import ReportInputs
from spiking.report.render import Image, Note, Section
from spiking.report.tables import safe_name

RASTER_NEURONS = 200
TRACE_NEURONS = 5


def _rates(entry: dict, model, trace, num_steps: int | None, n_features: int | None) -> tuple[dict, str] | None:
    """Firing rate per layer (spikes per neuron per step) and where it comes from."""
    eff = entry.get("efficiency") if isinstance(entry.get("efficiency"), dict) else {}
    if eff.get("neurons"):
        rates = {}
        T = eff.get("num_steps") or num_steps
        if eff.get("input_spikes") is not None and T and n_features:
            rates["input"] = float(eff["input_spikes"]) / (float(T) * n_features)
        rates.update({str(n["layer"]): float(n["firing_rate"]) for n in eff["neurons"]})
        return rates, "results.json efficiency block, mean over the test samples"
    spikes = entry.get("mean_spikes_per_sample")
    neurons = getattr(model, "layer_neurons", None) if model is not None else None
    if spikes and neurons and num_steps:
        return ({k: float(v) / (neurons[k] * num_steps) for k, v in spikes.items() if k in neurons},
                "results.json mean_spikes_per_sample / (neurons x steps), mean over the test samples")
    if trace is not None:
        return ({k: float(np.abs(fg.as_numpy(v["spikes"])).mean()) for k, v in trace.items() if "spikes" in v},
                "the traced test sample only")
    return None


def section_activity(inp: ReportInputs, out: Path) -> Section | None:
    """Per spiking network: spike raster and membrane traces of the first test sample (the saved network
    re-run on it) and the firing rate per layer; None when no model entry is a spiking network."""
    spiking = [m for m in inp.results["models"] if isinstance(m.get("snn"), dict)]
    if not spiking:
        return None
    sec = Section("Spiking activity")
    import torch

    from spiking.artifacts.checkpoint import load_model

    for m in spiking:
        name = str(m["name"])
        f = inp.model_file(m)
        num_steps = (m.get("snn") or {}).get("num_steps")
        model = trace = None
        if not f.is_file():
            sec.add(Note(f"{name}: {f.name} is missing, so no raster or membrane traces."))
        else:
            prep = inp.prepared()
            if prep is None:
                sec.add(Note(f"{name}: no raster or membrane traces: {inp.prep_error}."))
            try:
                model, meta = load_model(f)
            except Exception as e:  # a checkpoint this version cannot rebuild
                sec.add(Note(f"{name}: {f.name} could not be loaded ({type(e).__name__}: {e})."))
                model = None
            if model is not None and prep is not None:
                if not hasattr(model, "trace"):
                    sec.add(Note(f"{name}: this version of SpikingCNN1d has no trace(); no raster or traces."))
                else:
                    # The first test batch with the evaluation's seed: a rate code then draws exactly
                    # the input spikes the scored prediction of this sample saw.
                    from spiking.artifacts.checkpoint import network_inputs
                    from spiking.evaluation.evaluate import EVAL_BATCH, EVAL_SEED

                    x = torch.as_tensor(network_inputs(meta, prep, "test")[:EVAL_BATCH])
                    with torch.no_grad(), torch.random.fork_rng(devices=[]):
                        torch.manual_seed(EVAL_SEED)
                        full = model.trace(x)
                    trace = {k: {kk: t[:, :1] for kk, t in v.items()} for k, v in full.items()}
                    _trace_figures(sec, name, model, meta, trace, prep, out)
        r = _rates(m, model, trace, num_steps, inp.results["dataset"].get("n_features"))
        if r is not None:
            rates, source = r
            p = fg.firing_rates(rates, out / f"rates_{safe_name(name)}.png", title=f"{name}: firing rate per layer")
            sec.add(Image(p, f"{name}: firing rate per layer, spikes per neuron per time step (from {source})."))
        else:
            sec.add(Note(f"{name}: no firing rates (no efficiency block, spike counts or traced sample)."))
    return sec


def _trace_figures(sec: Section, name: str, model, meta: dict, trace: dict, prep, out: Path) -> None:
    from spiking.training.objectives import objective_for

    true = prep.class_names[int(prep.y["test"][0])]
    about = f"test sample {prep.ids['test'][0]} (true class {true}"
    out_layer = trace.get("lif_out") or {}
    if "spikes" in out_layer and "mem" in out_layer:
        # the networks' own decision rule: spike count per class, membrane potential as tie-breaker
        objective = objective_for(meta)
        spk, mem = _tensor(out_layer["spikes"]), _tensor(out_layer["mem"])
        pred = prep.class_names[int(objective.scores(spk, mem)[0].argmax())]
        about += f", predicted {pred}" + ("" if float(spk[:, 0].abs().sum()) > 0 else
                                          " with no output spike, by membrane potential")
    about += ")"
    T = int(getattr(model, "num_steps", 0)) or None
    labels = prep.class_names if int(meta.get("population") or 1) == 1 else None
    p = fg.spike_raster(trace, out / f"raster_{safe_name(name)}.png", max_neurons=RASTER_NEURONS, output_labels=labels,
                        title=f"{name}: spike raster, {about}")
    sec.add(Image(p, f"{name}: spikes of each layer for {about}" + (f" over {T} time steps" if T else "")
                     + f". Each panel shows at most the {RASTER_NEURONS} most active neurons of the layer, ranked "
                       "by spike count (top = most active); black = spike."))
    thr = getattr(getattr(model, "lif1", None), "threshold", 1.0)
    thr = float(thr) if thr is not None else None
    p = fg.membrane_traces(trace, out / f"membrane_{safe_name(name)}.png", n_neurons=TRACE_NEURONS, threshold=thr,
                           output_labels=labels, title=f"{name}: membrane potential, {about}")
    sec.add(Image(p, f"{name}: membrane potential of {TRACE_NEURONS} neurons of each LIF layer for the same sample, "
                     "spread from the most to the least active neuron that spiked (output layer: the most active "
                     f"outputs, labelled by class); circles mark spikes, the dashed line is the threshold ({thr:g}). "
                     "snnTorch subtracts the threshold at the step after a spike, so a neuron whose input "
                     "exceeds the threshold at every step fires at every step while its potential keeps rising."))


def _tensor(x):
    import torch

    return x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))

