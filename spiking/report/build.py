"""Collect what a run, an experiment or an architecture-search folder holds and write its report.

Details: docs/modules.md, section ``spiking.report.build``.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from spiking.report import figures as fg
from spiking.report.inputs import ReportError, ReportInputs, detect_kind, is_num, read_manifest
from spiking.report.render import PNG_MAGIC, Bullets, Image, Note, Section, Table, Text, write_report

DEFAULT_CONVENTION = ("45 nm CMOS, 32-bit float (Horowitz, ISSCC 2014): MAC 4.6 pJ, AC 0.9 pJ; "
                      "memory traffic is not counted")
RASTER_NEURONS = 200
TRACE_NEURONS = 5



# --------------------------------------------------------------------------- formatting
def _safe(name: str) -> str:
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


def _pct(x) -> str:
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


def _describe(entry: dict, run_cfg: dict | None) -> str:
    name = str(entry["name"])
    if name == "logreg":
        return "logreg (baseline)"
    s = entry.get("snn")
    if isinstance(s, dict) and _is_converted(entry):
        bits = [str(s.get("neuron", "?")), f"{s.get('num_steps', s.get('n_steps'))} steps"]
        if s.get("synapse") is not None:
            bits.append(f"synapse {float(s['synapse']):g} s" if s["synapse"] else "no synapse filter")
        if s.get("scale_firing_rates") is not None:
            bits.append(f"firing rates x{float(s['scale_firing_rates']):g}")
        return f"{name} (NengoDL conversion: {', '.join(bits)})"
    if isinstance(s, dict):
        eff = entry.get("efficiency") if isinstance(entry.get("efficiency"), dict) else {}
        bits = [str(s.get("neuron", "?")), f"beta {s.get('beta')}", f"{s.get('num_steps')} steps"]
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
    if preset and name == "cnn":
        return f"{name} ({preset}{where})"
    return f"{name} (CNN_PT{where})" if isinstance(entry.get("architecture"), dict) else name


def _is_converted(entry: dict) -> bool:
    """A spiking network converted from a trained network (NengoDL), not trained itself."""
    s = entry.get("snn")
    return isinstance(s, dict) and s.get("framework") == "nengo-dl"


def _convention(results: dict) -> str:
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
        secs_cell = ("0 (converted)" if _is_converted(m) and not secs else
                     f"{float(secs):.1f}" if secs is not None else "-")
        rows.append([_describe(m, run_cfg), _pct(t.get("accuracy")), _pct(t.get("balanced_accuracy")),
                     _pct(t.get("macro_f1")), f"{int(params):,}" if params is not None else "-",
                     secs_cell, ops_cell(m),
                     f"{float(e) / div:.4g}" if e is not None else "-",
                     f"{float(ratio):.3g}" if ratio is not None else "-"])
    caption = ("Held-out test split, scored once. Energy per inference, mean over the test samples: "
               + _convention(results) + ". Energy vs CNN: the network's energy divided by the CNN's."
               if energies else
               "Held-out test split, scored once. No energy estimate recorded in this results.json ('-').")
    if any(_is_converted(m) for m in results["models"]):
        caption += (" The NengoDL conversions were not trained (training time 0): their weights are those of the "
                    "Keras CNN they were converted from.")
    return Table(header, rows, caption)


# --------------------------------------------------------------------------- sections
def _section_classes(inp: ReportInputs, out: Path) -> Section:
    sec = Section("Class frequencies: all cohorts in the shards vs the kept top-k")
    if inp.shards is None:
        return sec.add(Note(f"Skipped: the shards ({inp.shards_named}) are not there any more, so the class counts "
                            f"of the whole dataset are unknown. Kept classes: {', '.join(inp.classes)}."))
    try:
        counts = read_manifest(inp.shards).get("class_counts")
    except (OSError, ValueError, AttributeError) as e:
        return sec.add(Note(f"Skipped: cannot read the shards' manifest.json ({e})."))
    if not counts or not isinstance(counts, dict) or not all(is_num(v) for v in counts.values()):
        return sec.add(Note("Skipped: the shards' manifest.json has no class_counts (counts per class)."))
    p = fg.class_frequencies(counts, inp.classes, out / "class_frequencies.png")
    total = sum(counts.values())
    kept = sum(v for k, v in counts.items() if k in set(inp.classes))
    sec.add(Image(p, f"Primary-tumour samples per cohort in the shards ({inp.shards}); the {len(inp.classes)} kept "
                     f"cohorts in blue: {kept:,} of {total:,} samples."))
    return sec


#: What each layout (``config.json`` ``data.layout``) does, for the sentence naming it.
LAYOUT_MEANING = {
    "identity": "the features in file order on a 1-D strip (the study's input)",
    "square": "the features in file order, zero-padded to a square image (the study's 2-D option)",
    "random": "a fixed random permutation of the features on a 1-D strip (the control: same values, "
              "no neighbourhood structure)",
    "correlation_1d": "the features on a 1-D strip in the leaf order of a hierarchical clustering of their "
                      "correlations, so correlated features sit side by side",
    "embedding_2d": "a DeepInsight-style layout: the features embedded in 2-D by PCA and each assigned to its "
                    "own pixel",
}
FEATURE_MAP_LABELS = 400  # a feature map with at most this many positions is drawn with every feature named


def _values_text(padded: bool) -> str:
    """What the colour of a layout image means (units), for the captions."""
    return ("Colour: the scaled feature value the networks receive, dimensionless in [0, 1] (the run's scaling, "
            "fitted on the training part)" + ("; padding pixels, drawn grey, are 0 in the input." if padded else "."))


def _shape_text(shape) -> str:
    """``33x33`` for a 2-D image, ``1-D strip of 1046 positions`` for a 1-D one."""
    shape = [int(s) for s in shape]
    if len(shape) == 2:
        return f"{shape[0]}x{shape[1]}"
    return f"1-D strip of {shape[0]} positions" if len(shape) == 1 else "x".join(map(str, shape))


def _layout_sentence(name: str, state: dict | None, seed) -> str:
    meaning = LAYOUT_MEANING.get(name)
    text = f"Layout: {name}" + (f", {meaning}" if meaning else "")
    if name in ("random", "embedding_2d") and seed is not None:
        text += f" (seed {seed})"
    text += "."
    if state is not None and state.get("shape"):
        shape = [int(s) for s in state["shape"]]
        n = int(state.get("n_features") or len(state.get("positions") or []))
        size = int(np.prod(shape))
        if len(shape) == 2:
            text += f" Each sample's {n} scaled features make one {_shape_text(shape)} image"
        else:
            text += f" Each sample's {n} scaled features lie on a {_shape_text(shape)}"
        text += (f" ({size - n} padding positions, set to 0)." if size > n else ".")
    if name != "identity":
        text += " The layout was fitted on the training part only and is saved in layout.json."
    return text


def _section_layout(inp: ReportInputs, out: Path) -> Section:
    """The run's spatial layout: which feature sits where, one test sample's image, the class-mean
    images of the training part (no test sample is summarised beyond the one shown)."""
    from spiking.data.layout.state import layout_from_state
    from spiking.report.layout_figures import plot_class_mean_images, plot_feature_map, plot_sample_image

    sec = Section("Spatial layout")
    data = (inp.config or {}).get("data") or {}
    prep = inp.prepared()
    if prep is not None:
        state, names, error = prep.layout_state(), list(prep.feature_names), None
    else:
        state, names, error = inp.saved_layout()
    name = str(data.get("layout") or (state or {}).get("name") or "identity")
    sentence = _layout_sentence(name, state, data.get("layout_seed"))
    if not (inp.root / "layout.json").is_file():
        sentence += " This run was saved before layouts existed (no layout.json): its inputs are in file order."
    sec.add(Text(sentence))
    if state is not None and state.get("name") != name:
        sec.add(Note(f"config.json names the {name} layout, but layout.json holds a {state.get('name')} layout; "
                     "the figures show the saved one."))
    layout = None
    if state is not None:
        try:
            layout = layout_from_state(state)
        except ValueError as e:
            error = f"layout.json does not describe a usable layout ({e})"
    shape = _shape_text(layout.shape_) if layout is not None else None
    padded = layout is not None and int(np.prod(layout.shape_)) > int(layout.n_features_in_)
    if layout is not None and names is not None:
        try:
            p = plot_feature_map(layout, names, out / "layout_feature_map.png", max_labels=FEATURE_MAP_LABELS)
        except (ValueError, TypeError) as e:
            sec.add(Note(f"No feature map: {e}."))
        else:
            labelled = int(np.prod(layout.shape_)) <= FEATURE_MAP_LABELS
            what = ("each position labelled with its feature" if labelled else
                    "colour = the feature's index in file order, 0 to "
                    f"{int(layout.n_features_in_) - 1} (too many positions to label)")
            sec.add(Image(p, f"Feature map of the {name} layout ({shape}): which feature (gene) sits at each "
                             f"position; {what}" + ("; grey = padding" if padded else "")
                             + f". The table {p.with_suffix('.csv').name} beside this report lists every "
                               "feature's position (one row per feature)."))
    if prep is None:
        return sec.add(Note(f"No sample or class-mean images: {inp.prep_error or error}."))
    if layout is None:
        return sec.add(Note(f"No layout figures: {error}."))
    test, train = prep.features("test"), prep.features("train")
    if len(test):
        sid, true = prep.ids["test"][0], prep.class_names[int(prep.y["test"][0])]
        p = plot_sample_image(layout, test[0], out / "layout_sample.png",
                              title=f"test sample {sid} (true class {true}), {shape}")
        sec.add(Image(p, f"The image of the first test sample, {sid} (true class {true}), on the {name} layout "
                         f"({shape}). {_values_text(padded)}"))
    else:
        sec.add(Note("No sample image: the test part is empty."))
    if len(train):
        p = plot_class_mean_images(layout, train, prep.y["train"], prep.class_names, out / "layout_class_means.png")
        sec.add(Image(p, f"Mean image of each class over the training part ({len(train)} samples; n per class in "
                         f"each panel's label), on the {name} layout ({shape}), one colour scale for all classes. "
                         f"{_values_text(padded)} No test sample enters these means."))
    else:
        sec.add(Note("No class-mean images: the training part is empty."))
    return sec


def _history_rows(rows: list, zero_based: bool) -> list[dict]:
    return [{"epoch": int(r["epoch"]) + (1 if zero_based else 0), "loss": float(r["loss"]),
             "val_balanced_accuracy": float(r["val_balanced_accuracy"])} for r in rows]


def _nas_report_hint(inp: ReportInputs) -> str:
    """Where the converted networks' Keras CNN was trained (the nas search folder), for the report's text."""
    src = str(((inp.experiment or {}).get("weights") or {}).get("source") or "")
    if not src:
        src = next((str(m["source"]) for m in inp.results["models"] if m.get("source")), "")
    if src.endswith(".keras"):
        folder = src.rsplit("/", 1)[0] if "/" in src else "."
        return f"{src}; its training is in the report of that architecture search (`spiking report {folder}`)"
    return "its training is in the report of the architecture search (`spiking nas`) that found it"


def _section_curves(inp: ReportInputs, out: Path) -> Section:
    if inp.converted:
        names = ", ".join(str(m["name"]) for m in inp.results["models"] if _is_converted(m))
        return Section("Training").add(Text(
            f"Nothing was trained in this experiment: the spiking networks ({names}) are NengoDL conversions of the "
            f"trained Keras CNN (cnn_k) and keep its weights; each trial only chose how to convert and simulate it "
            f"(neuron type, synapse, time steps, firing-rate scale). The Keras CNN is {_nas_report_hint(inp)}."))
    sec = Section("Training curves")
    hists: dict[str, list[dict]] = {}
    notes = []
    if inp.kind == "run":
        for f in sorted(inp.root.glob("history_*.json")):
            try:
                h = json.loads(f.read_text())
                hists[f.stem.removeprefix("history_")] = _history_rows(h.get("epochs", []), zero_based=True)
            except (ValueError, KeyError, TypeError) as e:
                notes.append(f"{f.name} could not be read ({e}).")
    else:
        for m in inp.results["models"]:
            if m["name"] == "logreg":
                continue
            f = inp.model_file(m)
            ck = inp.checkpoint(f)
            if not isinstance(ck, dict) or not ck.get("history"):
                notes.append(f"{m['name']}: no history ({f.name} missing or without one).")
                continue
            try:
                hists[str(m["name"])] = _history_rows(ck["history"], zero_based=False)
            except (ValueError, KeyError, TypeError) as e:
                notes.append(f"{m['name']}: the history in {f.name} could not be read ({e}).")
    if any(hists.values()):
        p = fg.training_curves(hists, out / "training_curves.png")
        what = ("history_*.json of the run" if inp.kind == "run" else
                "the history stored in each exported checkpoint (up to the checkpoint's epoch)")
        sec.add(Image(p, f"Training loss and validation balanced accuracy per epoch ({what}). The weights kept are "
                         "those of the best validation epoch (star)."))
    elif not notes:
        notes.append("No training history found.")
    for n in notes:
        sec.add(Note(n))
    return sec


def _section_confusion(inp: ReportInputs, out: Path) -> Section:
    sec = Section("Confusion matrices (test split)")
    sec.add(Text("Rows: true class; columns: predicted class; each row normalised to 1 (cells in % of the true "
                 "class, so the diagonal is the per-class recall)."))
    n_test = sum(((inp.results.get("split") or {}).get("test_class_counts") or {}).values()) or None
    for m in inp.results["models"]:
        cm = (m.get("test") or {}).get("confusion_matrix")
        if cm is None:
            sec.add(Note(f"{m['name']}: no confusion matrix in results.json."))
            continue
        title = f"{m['name']}: test balanced accuracy {_pct(m['test'].get('balanced_accuracy'))}%"
        p = fg.confusion_matrix(cm, inp.classes, title, out / f"confusion_{_safe(m['name'])}.png")
        total = int(np.asarray(cm).sum())
        sec.add(Image(p, f"{m['name']}: confusion matrix on the test split ({total} samples"
                         + (")" if n_test in (None, total) else f", of {n_test})") + ", normalised per true class."))
    return sec


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
        return ({k: float(np.abs(fg._np(v["spikes"])).mean()) for k, v in trace.items() if "spikes" in v},
                "the traced test sample only")
    return None


def _section_activity(inp: ReportInputs, out: Path) -> Section | None:
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
            p = fg.firing_rates(rates, out / f"rates_{_safe(name)}.png", title=f"{name}: firing rate per layer")
            sec.add(Image(p, f"{name}: firing rate per layer, spikes per neuron per time step (from {source})."))
        else:
            sec.add(Note(f"{name}: no firing rates (no efficiency block, spike counts or traced sample)."))
    return sec


def _trace_figures(sec: Section, name: str, model, meta: dict, trace: dict, prep, out: Path) -> None:
    from spiking.training.objectives import SpikeCountObjective

    true = prep.class_names[int(prep.y["test"][0])]
    about = f"test sample {prep.ids['test'][0]} (true class {true}"
    out_layer = trace.get("lif_out") or {}
    if "spikes" in out_layer and "mem" in out_layer:
        # the networks' own decision rule: spike count per class, membrane potential as tie-breaker
        objective = SpikeCountObjective(int(meta["n_classes"]), loss=meta.get("loss") or "ce",
                                        population=int(meta.get("population") or 1))
        spk, mem = _tensor(out_layer["spikes"]), _tensor(out_layer["mem"])
        pred = prep.class_names[int(objective.scores(spk, mem)[0].argmax())]
        about += f", predicted {pred}" + ("" if float(spk[:, 0].abs().sum()) > 0 else
                                          " with no output spike, by membrane potential")
    about += ")"
    T = int(getattr(model, "num_steps", 0)) or None
    labels = prep.class_names if int(meta.get("population") or 1) == 1 else None
    p = fg.spike_raster(trace, out / f"raster_{_safe(name)}.png", max_neurons=RASTER_NEURONS, output_labels=labels,
                        title=f"{name}: spike raster, {about}")
    sec.add(Image(p, f"{name}: spikes of each layer for {about}" + (f" over {T} time steps" if T else "")
                     + f". Each panel shows at most the {RASTER_NEURONS} most active neurons of the layer, ranked "
                       "by spike count (top = most active); black = spike."))
    thr = getattr(getattr(model, "lif1", None), "threshold", 1.0)
    thr = float(thr) if thr is not None else None
    p = fg.membrane_traces(trace, out / f"membrane_{_safe(name)}.png", n_neurons=TRACE_NEURONS, threshold=thr,
                           output_labels=labels, title=f"{name}: membrane potential, {about}")
    sec.add(Image(p, f"{name}: membrane potential of {TRACE_NEURONS} neurons of each LIF layer for the same sample, "
                     "spread from the most to the least active neuron that spiked (output layer: the most active "
                     f"outputs, labelled by class); circles mark spikes, the dashed line is the threshold ({thr:g}). "
                     "snnTorch subtracts the threshold at the step after a spike, so a neuron whose input "
                     "exceeds the threshold at every step fires at every step while its potential keeps rising."))


def _tensor(x):
    import torch

    return x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))


def _section_tradeoff(inp: ReportInputs, out: Path) -> Section:
    sec = Section("Accuracy vs time steps and energy (search trials)")
    trials = [t for t in inp.trials or [] if isinstance(t, dict) and t.get("best_val_balanced_accuracy") is not None
              and math.isfinite(t["best_val_balanced_accuracy"])]
    if not trials:
        return sec.add(Note("No trial reported a validation balanced accuracy."))
    acc = [float(t["best_val_balanced_accuracy"]) for t in trials]
    search = inp.results.get("search") or {}
    ids = [str(t.get("trial_id")) for t in trials]
    marks = {}
    for label, key in (("best", "best"), ("trade-off", "tradeoff")):
        tid = (search.get(key) or {}).get("trial_id")
        if tid is not None and str(tid) in ids:
            marks[label] = ids.index(str(tid))
    # config.num_steps (snn_k folders written before the rename: config.n_steps); energy: torch experiments'
    # efficiency.energy_pj, snn_k's val.energy_pj
    key = "num_steps"
    steps = [(t.get("config") or {}).get("num_steps", (t.get("config") or {}).get("n_steps")) for t in trials]
    has_steps = any(s is not None for s in steps)
    if has_steps:
        idx = [i for i, s in enumerate(steps) if s is not None]
        p = fg.accuracy_tradeoff([float(steps[i]) for i in idx], [acc[i] for i in idx],
                                 out / "tradeoff_num_steps.png", xlabel=f"time steps per inference ({key})",
                                 title=f"{len(idx)} trials: accuracy vs time steps",
                                 marks={k: idx.index(v) for k, v in marks.items() if v in idx}, log_x=False)
        sec.add(Image(p, f"Best validation balanced accuracy of each trial against its {key}; red: Pareto front "
                         "(no other trial is as accurate with fewer or equal steps)."
                         + (" NengoDL simulates 1 ms per step." if inp.converted else "")))

    def _energy(t: dict):
        for block in ("efficiency", "val"):
            b = t.get(block)
            if isinstance(b, dict) and b.get("energy_pj") is not None:
                return b["energy_pj"]
        return None

    energy = [_energy(t) for t in trials]
    idx = [i for i, e in enumerate(energy) if e is not None]
    conv = _convention(inp.results)
    if idx:
        unit, div = energy_unit([float(energy[i]) for i in idx])
        p = fg.accuracy_tradeoff([float(energy[i]) / div for i in idx], [acc[i] for i in idx],
                                 out / "tradeoff_energy.png", xlabel=f"estimated energy per inference ({unit})",
                                 title=f"{len(idx)} trials: accuracy vs energy per inference",
                                 marks={k: idx.index(v) for k, v in marks.items() if v in idx},
                                 note=f"Energy convention: {conv}.")
        sec.add(Image(p, "Best validation balanced accuracy of each trial against its estimated energy per inference "
                         f"({unit}); red: Pareto front (no other trial is as accurate for less or equal energy). "
                         + ("Energy: mean over the trial's validation samples (trials.json val.energy_pj), "
                            "from the spikes counted in its simulation. " if inp.converted else "")
                         + f"Energy convention: {conv}."))
        if len(idx) < len(trials):
            sec.add(Note(f"{len(trials) - len(idx)} of {len(trials)} trials have no energy estimate and are not in "
                         "the energy plot."))
    else:
        sec.add(Note("Energy per inference was not recorded for the trials" + ("; only num_steps is plotted."
                                                                              if has_steps else ".")))
    if not has_steps and not idx:
        sec.add(Note("Not applicable: a CNN experiment has no num_steps."))
    return sec


# --------------------------------------------------------------------------- the NengoDL conversion (snn_k)
def _section_activity_converted(inp: ReportInputs, out: Path) -> Section | None:
    """activity.png of the experiment (copied into the report) and the firing rate per layer of each conversion."""
    spiking = [m for m in inp.results["models"] if _is_converted(m)]
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
        p = fg.firing_rates({str(k): float(v) for k, v in hz.items()}, out / f"rates_{_safe(name)}.png",
                            title=f"{name}: firing rate per layer", ylabel="firing rate (Hz)", fmt="{:.1f}")
        mean = m.get("mean_firing_rate_hz")
        sec.add(Image(p, f"{name}: mean firing rate of each converted layer's neurons on the test split, in Hz "
                         "(results.json firing_rates_hz"
                         + (f"; mean of the layers {float(mean):.1f} Hz" if mean is not None else "")
                         + f"). {s.get('neuron', '?')} neurons, {s.get('num_steps', s.get('n_steps', '?'))} steps, firing rates "
                           f"x{s.get('scale_firing_rates', '?')}; with NengoDL's 1 ms step, 100 Hz is 0.1 spike per "
                           "neuron per time step."))
    return sec


def _section_conversion_notes(inp: ReportInputs) -> Section | None:
    notes = {str(m["name"]): [str(n) for n in m.get("conversion_notes") or []]
             for m in inp.results["models"] if _is_converted(m)}
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


# --------------------------------------------------------------------------- the architecture search (nas)
def _nas_settings(inp: ReportInputs) -> dict:
    return (inp.nas or {}).get("settings") or ((inp.results.get("search") or {}).get("settings") or {})


def _nas_best(inp: ReportInputs) -> dict | None:
    best = (inp.results.get("search") or {}).get("best")
    if isinstance(best, dict) and best.get("id"):
        return best
    f = inp.root / "best.json"
    if f.is_file():
        try:
            b = json.loads(f.read_text())
            return b if isinstance(b, dict) and b.get("id") else None
        except ValueError:
            return None
    return None


def _nas_front(inp: ReportInputs) -> list[dict]:
    if inp.front is not None:
        return [r for r in inp.front if isinstance(r, dict)]
    front = (inp.results.get("search") or {}).get("front")
    return [r for r in front if isinstance(r, dict)] if isinstance(front, list) else []


def _section_nas_settings(inp: ReportInputs) -> Section:
    sec = Section("Search settings")
    nas = inp.nas or {}
    s = _nas_settings(inp)
    search = inp.results.get("search") or {}
    rows = []

    def add(label, value):
        if value is not None and value != "":
            rows.append([label, str(value)])

    add("method", search.get("method") or "Fast-DENSER (1+lambda) evolution strategy")
    add("budget", nas.get("budget") or search.get("budget"))
    add("generations", s.get("generations"))
    add("lambda (offspring per generation)", s.get("offspring"))
    if s.get("time_budget_s") is not None:
        add("time budget per individual (s)", f"{float(s['time_budget_s']):g}")
    if s.get("max_params") is not None:
        add("most parameters", f"{int(s['max_params']):,}")
    add("most epochs", s.get("max_epochs"))
    obj = s.get("objectives")
    add("objectives", ", ".join(map(str, obj)) if isinstance(obj, list) else obj)
    add("grammar", nas.get("grammar_file"))
    if s.get("require_relu") is not None:
        add("ReLU required (a network NengoDL can make spike)", "yes" if s["require_relu"] else "no")
    add("seed", s.get("seed"))
    add("CPUs per individual", s.get("cpus_per_individual"))
    if "max_train_rows" in s:
        add("training rows", "all" if s["max_train_rows"] is None else s["max_train_rows"])
    rates = nas.get("rates")
    if isinstance(rates, dict) and rates:
        add("mutation rates", ", ".join(f"{k} {v:g}" if is_num(v) else f"{k} {v}" for k, v in rates.items()))
    d = s.get("data")
    if isinstance(d, dict) and d:
        add("data", ", ".join(f"{k} {v}" for k, v in d.items()))
    n = len(inp.rows or [])
    failed = sum(1 for r in inp.rows or [] if r.get("error"))
    add("individuals evaluated", f"{n} ({failed} failed)")
    sha = nas.get("split_sha256") or search.get("split_sha256")
    if sha:
        add("split fingerprint (sha256)", f"{sha[:16]}...")
    sec.add(Table(["setting", "value"], rows, "From nas.json (and results.json's search block). Fitness is the "
                                              "validation accuracy; the test split is scored once, after the search."))
    return sec


def _parent_line(rows: list[dict], best: dict | None) -> list[tuple[int, float]]:
    """``(generation, fitness)`` of the parent kept after each generation: the parent of the next
    generation's offspring, and after the last generation the search's best."""
    by_id = {r["id"]: r for r in rows}
    gens = sorted({int(r["generation"]) for r in rows if r.get("generation") is not None})
    line = []
    for i, g in enumerate(gens):
        pid = None
        if i + 1 < len(gens):
            pid = next((r.get("parent") for r in rows if r.get("generation") == gens[i + 1] and r.get("parent")), None)
        elif best is not None:
            pid = best.get("id")
        p = by_id.get(pid) if pid else None
        if p is not None and is_num(p.get("fitness")):
            line.append((g, float(p["fitness"])))
    return line


def _section_nas_progress(inp: ReportInputs, out: Path) -> Section:
    sec = Section("Search progress")
    rows = [r for r in inp.rows or [] if r.get("generation") is not None]
    scored = [r for r in rows if is_num(r.get("fitness")) and math.isfinite(r["fitness"])]
    if not scored:
        return sec.add(Note("No individual of generations.json has a fitness."))
    best = _nas_best(inp)
    ids = [r["id"] for r in scored]
    best_i = ids.index(best["id"]) if best is not None and best.get("id") in ids else None
    failed = [bool(r.get("error")) for r in scored]
    p = fg.nas_generations([int(r["generation"]) for r in scored], [float(r["fitness"]) for r in scored],
                           out / "nas_generations.png", parent_line=_parent_line(rows, best), failed=failed,
                           train_longer=[bool(r.get("train_longer")) for r in scored], best=best_i,
                           title=f"{len(scored)} individuals: validation accuracy by generation")
    lam = _nas_settings(inp).get("offspring")
    sec.add(Image(p, "Fitness (validation accuracy) of every individual, by generation: generation 0 is the random "
                     "initial population"
                     + (f" (lambda + 1 = {int(lam) + 1} individuals)" if is_num(lam) else "")
                     + ", each later generation the offspring of the parent; hollow markers are 'train longer' "
                       "offspring (the parent trained further)"
                     + (", crosses failed individuals (fitness 0)" if any(failed) else "")
                     + ". Red: the parent kept after each generation, the fittest of the parent and its offspring "
                       "(the (1+lambda) selection; ties go to fewer parameters)."))
    ok = [r for r in scored if not r.get("error") and is_num(r.get("parameters"))]
    if ok:
        front_ids = {r.get("id") for r in _nas_front(inp)}
        ok_ids = [r["id"] for r in ok]
        objectives = _nas_settings(inp).get("objectives") or []
        p = fg.nas_accuracy_parameters([float(r["parameters"]) for r in ok], [float(r["fitness"]) for r in ok],
                                       out / "nas_accuracy_parameters.png",
                                       front=[i for i, rid in enumerate(ok_ids) if rid in front_ids],
                                       best=ok_ids.index(best["id"]) if best is not None and best["id"] in ok_ids
                                       else None,
                                       title=f"{len(ok)} individuals: validation accuracy vs parameters")
        if "parameters" in objectives:
            how = ("red: the search's accuracy/size Pareto front (front.json: no other individual is as accurate "
                   "with fewer or equal parameters).")
        else:
            how = ("red: front.json, which holds only the best individual: the search's objectives were "
                   f"{', '.join(map(str, objectives)) or 'accuracy'} alone, so size was not traded against accuracy.")
        sec.add(Image(p, "Fitness (validation accuracy) of every individual against its trainable parameters; " + how
                         + (f" {len(scored) - len(ok)} failed individuals are left out." if len(ok) < len(scored)
                            else "")))
        missing = [rid for rid in front_ids if rid not in ok_ids]
        if missing:
            sec.add(Note(f"front.json names individuals not in generations.json: {', '.join(map(str, missing))}."))
    return sec


def _section_nas_best(inp: ReportInputs) -> Section:
    sec = Section("Best architecture")
    best = _nas_best(inp)
    if best is None:
        return sec.add(Note("results.json and best.json name no best individual."))
    facts = [f"individual {best['id']}"]
    if best.get("generation") is not None:
        facts.append(f"generation {best['generation']}")
    if is_num(best.get("fitness")):
        facts.append(f"validation accuracy {_pct(best['fitness'])}%")
    if is_num(best.get("val_balanced_accuracy")):
        facts.append(f"validation balanced accuracy {_pct(best['val_balanced_accuracy'])}%")
    if is_num(best.get("parameters")):
        facts.append(f"{int(best['parameters']):,} parameters")
    if is_num(best.get("macs")):
        facts.append(f"{si(best['macs'])} MACs per inference")
    if best.get("epochs") is not None:
        facts.append(f"{best['epochs']} epochs" + (f" (stopped by {best['stopped_by']})" if best.get("stopped_by")
                                                   else ""))
    sec.add(Text("The best individual: " + ", ".join(facts) + ". It is cnn_k in the results below (saved as "
                 "best_model.keras)."))
    if best.get("phenotype"):
        sec.add(Text("Phenotype (the grammar's derivation: layers in order, then the learning block):"))
        sec.add(Bullets([str(best["phenotype"])]))
    return sec


def _section_nas_rows(inp: ReportInputs) -> Section:
    sec = Section("Individuals (generations.json)")
    best = _nas_best(inp)
    best_id = best.get("id") if best else None
    rows = []
    for r in inp.rows or []:
        muts = r.get("mutations") or []
        rows.append([str(r["id"]) + (" (best)" if r["id"] == best_id else ""),
                     str(r.get("generation", "-")), str(r.get("parent") or "-"),
                     "; ".join(map(str, muts)) if muts else ("(random)" if not r.get("parent") else "-"),
                     f"{int(r['parameters']):,}" if is_num(r.get("parameters")) else "-",
                     _pct(r["fitness"]) if is_num(r.get("fitness")) else "-",
                     str(r["epochs"]) if r.get("epochs") is not None else "-",
                     f"{float(r['seconds']):.1f}" if is_num(r.get("seconds")) else "-",
                     str(r.get("stopped_by") or "-"), str(r.get("error") or "-").replace("\n", " ")])
    if not rows:
        return sec.add(Note("generations.json holds no individual."))
    sec.add(Table(["id", "generation", "parent", "mutations", "parameters", "fitness (val. accuracy, %)", "epochs",
                   "seconds", "stopped by", "error"], rows,
                  "One row per individual in the order evaluated. Mutations: what made the offspring from its parent "
                  "(add / reuse / remove a layer, re-derive a layer's parameters (dsge), change the learning block "
                  "(macro), or train the parent longer). Epochs include those a 'train longer' offspring inherited "
                  "from its parent; seconds are the individual's own training and scoring."))
    return sec


def _section_summary(inp: ReportInputs) -> Section:
    sec = Section("Summary (the study's Table II, extended)")
    sec.add(summary_table(inp.results, inp.config))
    return sec


def _intro(inp: ReportInputs) -> tuple[str, list[str]]:
    r = inp.results
    d = r.get("dataset") or {}
    sizes = (r.get("split") or {}).get("sizes") or {}
    name = (r.get("run") or {}).get("name") or inp.root.name
    lines = []
    if inp.kind == "run":
        title = f"Run report: {name}"
        lines.append(f"Run folder: {inp.source}")
    elif inp.kind == "nas":
        s = r.get("search") or {}
        nas = inp.nas or {}
        title = f"Architecture search report: {nas.get('name') or name}"
        gens = sorted({int(x["generation"]) for x in inp.rows or [] if x.get("generation") is not None})
        failed = sum(1 for x in inp.rows or [] if x.get("error"))
        lines.append(f"Architecture-search folder: {inp.source}. {s.get('method') or 'Fast-DENSER (1+lambda) ES'}"
                     + (f", budget {nas.get('budget') or s.get('budget')}" if nas.get("budget") or s.get("budget")
                        else "")
                     + f": {len(inp.rows or [])} individuals over {len(gens)} generations, {failed} failed. The best "
                       "network (cnn_k) was scored once on the test split, beside the logistic regression.")
    else:
        e = inp.experiment or {}
        title = f"Experiment report: {e.get('experiment') or name}"
        lines.append(f"Experiment folder: {inp.source}. {e.get('description') or ''}".rstrip())
        s = r.get("search") or {}
        facts = [f"budget {(e.get('budget') or {}).get('name')}" if (e.get("budget") or {}).get("name") else None,
                 f"seed {e['seed']}" if e.get("seed") is not None else None,
                 f"{s.get('n_trials', len(inp.trials or []))} trials",
                 f"{s['n_stopped_early']} stopped early by the scheduler" if s.get("n_stopped_early") is not None
                 else None,
                 f"{s['n_errors']} failed" if s.get("n_errors") is not None else None]
        lines.append("Search: " + ", ".join(f for f in facts if f) + ".")
        w = e.get("weights") if isinstance(e.get("weights"), dict) else {}
        if inp.converted and w.get("source"):
            lines.append(f"Weights: converted from {w['source']}"
                         + (" (built on the same split, checked)." if w.get("split_verified") else "."))
    lines.append(f"Data: {d.get('n_samples', '?')} samples x {d.get('n_features', '?')} features "
                 f"({d.get('units') or 'units not recorded'}), {len(inp.classes)} classes; split "
                 + ", ".join(f"{k} {v}" for k, v in sizes.items())
                 + f" (seed {(r.get('split') or {}).get('seed', '?')}).")
    lines.append(f"Generated {_dt.datetime.now().isoformat(timespec='seconds')} from the saved files "
                 "(nothing retrained).")
    return title, lines


# --------------------------------------------------------------------------- entry point
REPORT_PAGES = ("report.md", "report.html")
_IMAGE_REF = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def _report_pngs(md: str) -> set[str]:
    """The PNGs a report.md refers to that are its own (plain file names beside it).

    Only these are removed when a new report replaces it: any other file in the folder,
    a user's own PNG included, is left alone.
    """
    return {ref for ref in _IMAGE_REF.findall(md)
            if ref.endswith(".png") and "/" not in ref and "\\" not in ref and ref not in (".", "..")}


def _install_order(names: list[str]) -> list[str]:
    """Figures first, the pages last: an old report.md never points at a figure that is not there yet."""
    return sorted(names, key=lambda n: (n in REPORT_PAGES, n))


def _out_label(out_dir: str | Path | None, out: Path | str) -> str:
    return f"--out {out_dir}" if out_dir is not None else f"the report folder {out}"


def _check_local_out(out: Path, label: str) -> None:
    """``out`` is, or can become, a folder: neither it nor a folder above it is a file."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise ReportError(f"{label} is a file, not a folder" if p == out else
                                  f"{label}: {p} is a file, not a folder")
            return


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError as e:
        if e.errno != errno.EXDEV:  # the output folder is another mount: copy instead
            raise
        shutil.copy2(src, dst)
        src.unlink()


def _section_ablation(inp: ReportInputs, out: Path) -> Section:
    """The layout ablation (``spiking tune layout_ablation``): its table, the accuracy figure and,
    per layout, the feature map, one test sample's image and the mean training image per class
    (the PNGs the ablation wrote in ``figures/``)."""
    from spiking.report.ablation import ABLATION_HEADER, table_rows

    ab = inp.results["ablation"]
    sec = Section("Layout ablation")
    baseline = next((m for m in inp.results["models"] if m.get("name") == "logreg"), None)
    seeds = ab.get("seeds") or []
    sec.add(Table(ABLATION_HEADER, table_rows(ab.get("rows") or [], baseline),
                  caption=f"Test balanced accuracy, mean ± sd ({ab.get('sd', 'sample sd')}) over seeds {seeds}; "
                          "SynOps and energy per inference are means (45 nm convention); each network scored once."))
    figs = inp.root / "figures"
    rows_used = ab.get("train_rows")
    if rows_used is not None:
        sec.add(Text(f"Every network and the logistic regression trained on {rows_used} training rows "
                     f"(budget {(ab.get('budget') or {}).get('name', '?')})."))
    shown = [("accuracy.png", "Test balanced accuracy per layout: bars mean, whiskers sd, dots single seeds "
                              "(the y axis does not start at 0; its start is in the title).")]
    for layout in ab.get("layouts") or []:
        shown += [(f"{layout}_feature_map.png", f"{layout}: which miRNA sits where (table in the ablation's "
                                                f"figures/{layout}_feature_map.csv)."),
                  (f"{layout}_sample.png", f"{layout}: the first test sample's image (scaled values in [0, 1])."),
                  (f"{layout}_class_means.png", f"{layout}: mean training image per class (scaled values in [0, 1]).")]
    for name, caption in shown:
        if (figs / name).is_file():
            shutil.copyfile(figs / name, out / f"ablation_{name}")
            sec.add(Image(out / f"ablation_{name}", caption))
        else:
            sec.add(Note(f"{name} is missing from {figs}."))
    return sec


def _render(inp: ReportInputs, out: Path) -> Path:
    """Draw every figure and write report.md / report.html into the (empty) folder ``out``."""
    try:
        if inp.kind == "nas":
            sections = [_section_classes(inp, out), _section_nas_settings(inp), _section_nas_progress(inp, out),
                        _section_nas_best(inp), _section_nas_rows(inp), _section_confusion(inp, out)]
        elif inp.kind == "experiment" and isinstance(inp.results.get("ablation"), dict):
            sections = [_section_classes(inp, out), _section_ablation(inp, out)]
        else:
            sections = [_section_classes(inp, out)]
            if inp.kind == "run":
                sections.append(_section_layout(inp, out))
            sections += [_section_curves(inp, out), _section_confusion(inp, out)]
            act = _section_activity_converted(inp, out) if inp.converted else _section_activity(inp, out)
            if act is not None:
                sections.append(act)
            if inp.converted:
                notes = _section_conversion_notes(inp)
                if notes is not None:
                    sections.append(notes)
            if inp.kind == "experiment":
                sections.append(_section_tradeoff(inp, out))
        sections.append(_section_summary(inp))
        title, intro = _intro(inp)
        _, page = write_report(title, intro, sections, out)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        # a structure the checks of the JSON files let through: one line, not a traceback
        raise ReportError(f"{inp.source}: unexpected content in the saved files ({type(e).__name__}: {e})") from None
    return page


def _write_local(inp: ReportInputs, out: Path, label: str) -> Path:
    """Build the report in a temporary folder beside ``out``, then move its files into ``out``.

    Only when every figure and both pages were written are the files moved in; the PNGs
    of the previous report in ``out`` that the new one does not have are then removed.
    On any failure ``out`` is left as it was and the temporary folder is removed.
    """
    _check_local_out(out, label)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as e:
        raise ReportError(f"{label}: cannot create the folder ({e.strerror or e})") from None
    try:
        page = _render(inp, stage)
        old_md = out / "report.md"
        old = _report_pngs(old_md.read_text(errors="replace")) if old_md.is_file() else set()
        try:
            out.mkdir(exist_ok=True)
        except OSError as e:
            raise ReportError(f"{label}: cannot create the folder ({e.strerror or e})") from None
        new = [f.name for f in stage.iterdir()]
        for name in _install_order(new):
            _move(stage / name, out / name)
        for name in old - set(new):
            (out / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out / page.name


def _storage_out(out_dir: str):
    """``(filesystem, path)`` of a URI ``--out``; ReportError when it is malformed or a file."""
    from spiking.artifacts import storage as st

    try:
        fs, path = st.resolve_storage(out_dir)
        is_file = st.is_file(fs, path)
    except Exception as e:  # StorageError, or the storage is unreachable
        raise ReportError(f"--out {out_dir}: {e}") from None
    if is_file:
        raise ReportError(f"--out {out_dir} is a file, not a folder")
    return fs, path


def _upload(src: Path, fs, dest: str, page: str) -> str:
    """Copy the finished report in ``src`` to ``dest`` on ``fs`` (figures first, pages last), then remove
    the PNGs of the report that was there before and that the new one does not have; returns the page's URI."""
    from spiking.artifacts import storage as st

    where = st.to_uri(fs, dest)
    try:
        old_md = st.join(fs, dest, "report.md")
        old = _report_pngs(st.read_text(fs, old_md)) if st.is_file(fs, old_md) else set()
        new = [f.name for f in src.iterdir() if f.is_file()]
        for name in _install_order(new):
            st.write_bytes(fs, st.join(fs, dest, name), (src / name).read_bytes())
        for name in sorted(old - set(new)):
            if st.is_file(fs, st.join(fs, dest, name)):
                fs.delete_file(st.join(fs, dest, name))
    except Exception as e:
        raise ReportError(f"cannot upload the report to {where}: {type(e).__name__}: {e}") from None
    return st.to_uri(fs, st.join(fs, dest, page))


def build_report(target: str | Path, out_dir: str | Path | None = None) -> Path | str:
    """Write the report of a run folder, an experiment folder or an architecture-search folder.

    Args:
        target: a run folder (``config.json`` + ``results.json``, e.g. ``runs/demo``), an
            experiment folder (``experiment.json`` + ``results.json`` + ``trials.json``; the
            NengoDL conversion experiment ``snn_k`` included) or an architecture-search
            folder (``nas.json`` + ``generations.json`` + ``results.json``), a local path or
            an ``s3://bucket/prefix/experiment`` URI (read with the credentials of
            ``spiking.artifacts.storage``).
        out_dir: where ``report.md``, ``report.html`` and the PNGs go; default
            ``<target>/report/`` (for an S3 target, uploaded there). A local folder, or a
            storage URI (``s3://...``, ``file://...``) the finished report is uploaded to.
            The report is built in a temporary folder and moved into place only once it is
            complete; of a previous report there, only the PNGs its report.md refers to are
            replaced or removed.

    Returns:
        the path of ``report.html`` (``report.md`` and the PNGs are beside it); for a
        report uploaded to storage, its URI (a ``str``).

    Raises:
        ReportError: the target does not exist, is none of the three kinds of folder,
            or its results.json / config.json / experiment.json / trials.json / nas.json /
            generations.json / front.json are missing or malformed; ``out_dir`` is empty, a file, or cannot be written.
    """
    if out_dir is not None and not str(out_dir).strip():
        raise ReportError("--out is empty: name the folder the report goes to")
    if "://" in str(target):
        return _build_remote(str(target), out_dir)
    root = Path(os.path.abspath(target))  # "." is named by its real folder in messages and hints
    kind = detect_kind(root)
    inp = ReportInputs(root, kind)
    if out_dir is not None and "://" in str(out_dir):
        fs, dest = _storage_out(str(out_dir))
        with tempfile.TemporaryDirectory(prefix="spiking-report-") as tmp:
            page = _write_local(inp, Path(tmp) / "report", f"--out {out_dir}")
            return _upload(page.parent, fs, dest, page.name)
    # absolute: the figures are referenced relative to this folder, whatever the working directory
    out = Path(os.path.abspath(out_dir if out_dir is not None else root / "report"))
    return _write_local(inp, out, _out_label(out_dir, out))


def _build_remote(uri: str, out_dir: str | Path | None) -> Path | str:
    """Report of a folder in storage: copy its files down, build locally, upload the report."""
    import pyarrow.fs as pafs

    from spiking.artifacts import storage as st

    try:
        fs, path = st.resolve_storage(uri)
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=False, allow_not_found=True))
    except Exception as e:
        raise ReportError(f"cannot read {uri}: {e}") from None
    remote_out = out_dir is None or "://" in str(out_dir)
    if remote_out:  # checked before anything is copied down
        dest_fs, dest = (fs, st.join(fs, path, "report")) if out_dir is None else _storage_out(str(out_dir))
    with tempfile.TemporaryDirectory(prefix="spiking-report-") as tmp:
        local = Path(tmp) / "target" / (path.rstrip("/").rsplit("/", 1)[-1] or "target")
        local.mkdir(parents=True)
        for info in infos:
            if info.type == pafs.FileType.File and (info.base_name.endswith((".json", ".pt", ".joblib"))
                                                    or info.base_name == "activity.png"):
                (local / info.base_name).write_bytes(st.read_bytes(fs, info.path))
        try:
            inp = ReportInputs(local, detect_kind(local), source=uri)
        except ReportError as e:  # name the stored files, not their temporary copies
            raise ReportError(str(e).replace(str(local), uri.rstrip("/"))) from None
        if not remote_out:
            out = Path(os.path.abspath(out_dir))
            return _write_local(inp, out, _out_label(out_dir, out))
        page = _write_local(inp, Path(tmp) / "report", _out_label(out_dir, st.to_uri(dest_fs, dest)))
        return _upload(page.parent, dest_fs, dest, page.name)


__all__ = ["build_report", "ReportError", "summary_table", "ops_cell", "energy_unit", "si"]
