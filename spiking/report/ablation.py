"""The layout ablation's table (README/report), figures (from its scored networks) and report section."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from spiking.report.inputs import ReportInputs
from spiking.report.render import Image, Note, Section, Table, Text


def _pct(mean, sd) -> str:
    return f"{100 * mean:.2f} ± {100 * sd:.2f}" if sd is not None else f"{100 * mean:.2f}"


ABLATION_HEADER = ["layout", "image", "seeds", "CNN bal. acc. (%)", "SNN bal. acc. (%)", "SNN SynOps / inference",
                   "SNN energy (µJ)", "SNN / CNN energy"]


def table_rows(rows: list[dict], baseline: dict | None) -> list[list[str]]:
    """Cells of the ablation table (:data:`ABLATION_HEADER`): one row per layout, test balanced
    accuracy (%) mean ± sd over the seeds for CNN and SNN, the SNN's SynOps and energy per
    inference (means), the SNN/CNN energy ratio; the baseline last."""
    out = []
    for r in rows:
        c, s = r.get("cnn"), r.get("snn")
        if not c or not s:
            out.append([r["layout"], "-", "0", "failed", "failed", "-", "-", "-"])
            continue
        ratio = s.get("energy_ratio_vs_cnn_mean")
        out.append([r["layout"], "x".join(map(str, c["input_shape"])), str(s["n"]),
                    _pct(c["balanced_accuracy_mean"], c["balanced_accuracy_sd"]),
                    _pct(s["balanced_accuracy_mean"], s["balanced_accuracy_sd"]),
                    f"{s['synops_mean'] / 1e6:.2f} M", f"{s['energy_pj_mean'] / 1e6:.3f}",
                    f"{ratio:.2f}" if ratio is not None else "-"])
    if baseline is not None:
        out.append(["logistic regression (any layout)", "-", "-", f"{100 * baseline['test']['balanced_accuracy']:.2f}",
                    "-", "-", "-", "-"])
    return out


def markdown_table(rows: list[dict], baseline: dict | None) -> str:
    """The README table (:func:`table_rows` as Markdown)."""
    lines = ["| " + " | ".join(ABLATION_HEADER) + " |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows, baseline)]
    return "\n".join(lines)


def write_figures(rows: list[dict], networks: list[dict], prep, out: Path) -> list[Path]:
    """``accuracy.png`` (test balanced accuracy per layout, mean ± sd over seeds, CNN and SNN) and, per
    layout, the feature map, the first test sample's image and the mean training image per class,
    from the layout saved with that layout's first network. Returns the files written."""
    from spiking.artifacts.checkpoint import load_model, network_layout
    from spiking.data.layout.state import identity_state, layout_from_state
    from spiking.report.layout_figures import plot_class_mean_images, plot_feature_map, plot_sample_image

    out.mkdir(parents=True, exist_ok=True)
    written = [_accuracy_figure(rows, out / "accuracy.png")]
    done = set()
    for n in networks:
        if n["layout"] in done or n["role"] != "cnn":
            continue
        done.add(n["layout"])
        _, meta = load_model(_network_path(n, out))
        layout = network_layout(meta) or layout_from_state(identity_state(prep.n_features))
        stem = out / n["layout"]
        written.append(plot_feature_map(layout, prep.feature_names, stem.with_name(f"{n['layout']}_feature_map.png")))
        csv = stem.with_name(f"{n['layout']}_feature_map.csv")
        if csv.exists():
            written.append(csv)
        cls = prep.class_names[int(prep.y["test"][0])]
        written.append(plot_sample_image(layout, prep.features("test")[0],
                                         stem.with_name(f"{n['layout']}_sample.png"),
                                         title=f"{n['layout']}: test sample {prep.ids['test'][0]} ({cls})"))
        written.append(plot_class_mean_images(layout, prep.features("train"), prep.y["train"], prep.class_names,
                                              stem.with_name(f"{n['layout']}_class_means.png")))
    return [Path(p) for p in written]


def _network_path(n: dict, figures_dir: Path) -> Path:
    return figures_dir.parent / n["entry"]["ablation"]["file"].removeprefix("networks/")


def _accuracy_figure(rows: list[dict], path: Path) -> Path:
    from matplotlib.figure import Figure

    ok = [r for r in rows if r.get("cnn") and r.get("snn")]
    fig = Figure(figsize=(1.3 * max(3, len(ok)) + 1.5, 3.6), dpi=120, layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(ok))
    for k, (role, label) in enumerate((("cnn", "CNN"), ("snn", "SNN (LIF)"))):
        means = [100 * r[role]["balanced_accuracy_mean"] for r in ok]
        sds = [100 * (r[role]["balanced_accuracy_sd"] or 0.0) for r in ok]
        ax.bar(x + (k - 0.5) * 0.38, means, 0.38, yerr=sds, capsize=3, label=label)
        for i, r in enumerate(ok):
            ax.plot(np.full(len(r[role]["balanced_accuracies"]), x[i] + (k - 0.5) * 0.38),
                    100 * np.asarray(r[role]["balanced_accuracies"]), "k.", ms=3)
    lo = min(100 * min(min(r["cnn"]["balanced_accuracies"]), min(r["snn"]["balanced_accuracies"])) for r in ok)
    ax.set_ylim(max(0.0, lo - 5), 100)
    ax.set_xticks(x, [r["layout"] for r in ok], rotation=15)
    ax.set_ylabel("test balanced accuracy (%)")
    ax.set_title(f"Layout ablation: mean ± sd over seeds (dots: single seeds); y axis from {max(0.0, lo - 5):.0f}%")
    ax.legend(loc="lower right")
    fig.savefig(path)
    return path


def section_ablation(inp: ReportInputs, out: Path) -> Section:
    """The layout ablation (``spiking tune layout_ablation``): its table, the accuracy figure and,
    per layout, the feature map, one test sample's image and the mean training image per class
    (the PNGs the ablation wrote in ``figures/``)."""
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

