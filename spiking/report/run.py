"""Sections of a run or a search experiment folder: class frequencies, the spatial layout,
training curves, confusion matrices and the trials' accuracy trade-offs.

The spiking activity (re-running the saved networks) is in :mod:`.activity`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from spiking.evaluation.baseline import is_baseline
from spiking.report import figures as fg
from spiking.report.inputs import ReportInputs, is_num, read_manifest
from spiking.report.render import Image, Note, Section, Text
from spiking.report.tables import convention, energy_unit, pct, safe_name


def section_classes(inp: ReportInputs, out: Path) -> Section:
    """Class counts of the shards' manifest, the kept top-k highlighted; a note when the shards are gone."""
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


def section_layout(inp: ReportInputs, out: Path) -> Section:
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
    # a conversion's first record (epoch -1 -> 0: before any training) has no loss
    return [{"epoch": int(r["epoch"]) + (1 if zero_based else 0),
             "loss": None if r.get("loss") is None else float(r["loss"]),
             "val_balanced_accuracy": float(r["val_balanced_accuracy"])} for r in rows]


def section_curves(inp: ReportInputs, out: Path) -> Section:
    """Loss and validation balanced accuracy per epoch: a run's history_*.json, an experiment's checkpoints."""
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
            if is_baseline(m):
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


def section_confusion(inp: ReportInputs, out: Path) -> Section:
    """One test-split confusion matrix per results.json model entry, rows normalised to 1."""
    sec = Section("Confusion matrices (test split)")
    sec.add(Text("Rows: true class; columns: predicted class; each row normalised to 1 (cells in % of the true "
                 "class, so the diagonal is the per-class recall)."))
    n_test = sum(((inp.results.get("split") or {}).get("test_class_counts") or {}).values()) or None
    for m in inp.results["models"]:
        cm = (m.get("test") or {}).get("confusion_matrix")
        if cm is None:
            sec.add(Note(f"{m['name']}: no confusion matrix in results.json."))
            continue
        title = f"{m['name']}: test balanced accuracy {pct(m['test'].get('balanced_accuracy'))}%"
        p = fg.confusion_matrix(cm, inp.classes, title, out / f"confusion_{safe_name(m['name'])}.png")
        total = int(np.asarray(cm).sum())
        sec.add(Image(p, f"{m['name']}: confusion matrix on the test split ({total} samples"
                         + (")" if n_test in (None, total) else f", of {n_test})") + ", normalised per true class."))
    return sec


def section_tradeoff(inp: ReportInputs, out: Path) -> Section:
    """A search's trials: validation balanced accuracy against time steps and against energy per inference."""
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
    conv = convention(inp.results)
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

