"""The report's figures: one function per figure, each writes a PNG and returns its path.

Matplotlib is used through ``matplotlib.figure.Figure`` with the Agg canvas
(no pyplot, no display, no global figure state), so the functions can run in a
headless job or a test. The pure helpers :func:`normalize_confusion`,
:func:`pareto_front` and :func:`pick_neurons` carry the arithmetic and are
tested on their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from spiking.report.inputs import ReportError

DPI = 140
KEPT_COLOUR = "#1f77b4"
DROPPED_COLOUR = "#c7c7c7"
FRONT_COLOUR = "#d62728"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _pretty_layer(name: str) -> str:
    return {"lif_out": "lif_out (output)", "input": "input (encoded)"}.get(name, name)


# --------------------------------------------------------------------------- pure helpers
def normalize_confusion(cm: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Confusion matrix normalised per true class.

    Args:
        cm: counts, shape (n_classes, n_classes), rows = true class, columns =
            predicted class (the orientation of ``spiking.evaluation.metrics``).

    Returns:
        float array of the same shape; each row divided by its total, so every row
        with at least one sample sums to 1 (the row is that class's recall and its
        errors). A row without samples stays all zeros.

    Raises:
        ValueError: not a square 2-D matrix, or negative counts.
    """
    a = np.asarray(cm, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ReportError(f"a confusion matrix must be square, got shape {a.shape}")
    if (a < 0).any():
        raise ReportError("a confusion matrix cannot hold negative counts")
    totals = a.sum(axis=1, keepdims=True)
    return np.divide(a, totals, out=np.zeros_like(a), where=totals > 0)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points when the first coordinate is minimised
    (cost: num_steps, energy) and the second maximised (accuracy).

    A point is dominated when another one costs no more and scores no less, and is
    strictly better in at least one of the two. Of several identical points all are
    kept. Points with a NaN coordinate are never on the front.

    Args:
        points: ``(cost, score)`` pairs.

    Returns:
        indices into ``points``, ordered by increasing cost (ties: higher score first).
    """
    pts = [(float(c), float(s)) for c, s in points]
    front = []
    for i, (c, s) in enumerate(pts):
        if np.isnan(c) or np.isnan(s):
            continue
        dominated = any((c2 <= c and s2 >= s and (c2 < c or s2 > s))
                        for j, (c2, s2) in enumerate(pts) if j != i and not (np.isnan(c2) or np.isnan(s2)))
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (pts[i][0], -pts[i][1]))


def pick_neurons(spikes: np.ndarray, k: int, mem: np.ndarray | None = None) -> np.ndarray:
    """The ``k`` most active neurons of one layer for one sample.

    Args:
        spikes: (T, n_neurons) spikes (0/1, or -1/+1 for delta events) over the time steps.
        k: how many to return (all when the layer has fewer).
        mem: optional (T, n_neurons) membrane potentials; ties in spike count are
            broken by the highest peak potential (so silent layers still show the
            neurons closest to firing).

    Returns:
        int indices (min(k, n_neurons),), most active first.
    """
    spikes = np.abs(np.asarray(spikes, dtype=float))  # delta-encoded inputs have -1/+1 events
    counts = spikes.sum(axis=0)
    peak = np.asarray(mem, dtype=float).max(axis=0) if mem is not None else np.zeros_like(counts)
    order = np.lexsort((np.arange(len(counts)), -peak, -counts))  # last key sorts first
    return order[:k]


def spread_neurons(spikes: np.ndarray, k: int, mem: np.ndarray | None = None) -> np.ndarray:
    """``k`` neurons of one layer spread over its range of activity, for membrane traces.

    The neurons are ranked as in :func:`pick_neurons`; among those that spiked at
    least once (all neurons when fewer than ``k`` spiked) ``k`` evenly spaced ranks
    are taken, from the most active to the least active one, so the traces show
    saturated, intermittent and barely firing neurons rather than ``k`` copies of
    the busiest one.

    Returns:
        int indices (min(k, n_neurons),), most active first.
    """
    ranked = pick_neurons(spikes, np.asarray(spikes).shape[1], mem)
    counts = np.abs(np.asarray(spikes, dtype=float)).sum(axis=0)
    active = ranked[counts[ranked] > 0]
    pool = active if len(active) >= k else ranked[:max(k, len(active))]
    if len(pool) <= k:
        return pool[:k]
    pos = np.unique(np.round(np.linspace(0, len(pool) - 1, k)).astype(int))
    return pool[pos]


# --------------------------------------------------------------------------- figures
def class_frequencies(counts: Mapping[str, int], kept: Sequence[str], path: str | Path) -> Path:
    """Samples per class in the shards, kept classes highlighted (the study's figure 2).

    Args:
        counts: samples per class label in the ingested shards (``manifest["class_counts"]``).
        kept: the classes the run kept (top-k), drawn in colour; the others in grey.
        path: where the PNG goes.

    Returns:
        ``path`` as a ``Path``.
    """
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    names = [k for k, _ in items]
    values = [v for _, v in items]
    kept_set = set(kept)
    colours = [KEPT_COLOUR if n in kept_set else DROPPED_COLOUR for n in names]
    fig = _figure(7.5, max(2.5, 0.24 * len(names) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    ax.barh(y, values, color=colours)
    ax.set_yticks(y, names, fontsize=8 if len(names) > 20 else 9)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:,}", va="center", fontsize=7)
    ax.set_xlim(0, max(values) * 1.12 if values else 1)
    ax.set_xlabel("primary-tumour samples in the shards")
    ax.set_ylabel("class (TCGA cohort)")
    n_kept = sum(n in kept_set for n in names)
    ax.set_title(f"Samples per class: {n_kept} kept (blue) of {len(names)}")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=KEPT_COLOUR, label="kept (top-k)"), Patch(color=DROPPED_COLOUR, label="not kept")],
              loc="lower right", fontsize=8)
    return _save(fig, path)


def training_curves(histories: Mapping[str, Sequence[Mapping]], path: str | Path) -> Path:
    """Training loss and validation balanced accuracy per epoch, one line per network.

    Args:
        histories: network name -> list of epoch records ``{"epoch": int (1-based; 0 = a converted
            network before any training), "loss": float or None (no training), "val_balanced_accuracy":
            float in [0, 1]}``.
        path: where the PNG goes.

    Returns:
        ``path`` as a ``Path``. The best validation epoch of each network is marked.

    Raises:
        ValueError: no history holds an epoch.
    """
    series = {n: list(h) for n, h in histories.items() if h}
    if not series:
        raise ReportError("no training history with at least one epoch")
    fig = _figure(10, 3.8)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for name, rows in series.items():
        ep = [int(r["epoch"]) for r in rows]
        losses = [(e, float(r["loss"])) for e, r in zip(ep, rows) if r.get("loss") is not None]  # none: converted
        line, = ax_loss.plot([e for e, _ in losses], [v for _, v in losses], marker=".", label=name)
        acc = [100 * float(r["val_balanced_accuracy"]) for r in rows]
        ax_acc.plot(ep, acc, marker=".", color=line.get_color(), label=name)
        b = int(np.argmax(acc))
        ax_acc.plot([ep[b]], [acc[b]], marker="*", markersize=12, color=line.get_color(), linestyle="none")
    ax_loss.set_title("Training loss (mean over the epoch's batches)")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (network's objective)")
    ax_acc.set_title("Validation balanced accuracy (star: best epoch)")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("balanced accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, path)


def confusion_matrix(cm, class_names: Sequence[str], title: str, path: str | Path) -> Path:
    """Heat map of the test confusion matrix normalised per true class (rows sum to 1).

    Args:
        cm: counts (n_classes, n_classes), rows = true, columns = predicted.
        class_names: label of each row/column.
        title: figure title (the network's name).
        path: where the PNG goes.

    Returns:
        ``path`` as a ``Path``. Cells show the share of the true class in percent.

    Raises:
        ValueError: matrix shape and class names disagree (see :func:`normalize_confusion`).
    """
    norm = normalize_confusion(cm)
    n = len(class_names)
    if norm.shape != (n, n):
        raise ReportError(f"confusion matrix {norm.shape} does not match {n} class names")
    side = max(4.0, 0.45 * n + 2.0)
    fig = _figure(side + 0.8, side)
    ax = fig.add_subplot()
    im = ax.imshow(100 * norm, cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if n <= 15:
        for i in range(n):
            for j in range(n):
                v = 100 * norm[i, j]
                if v >= 0.05:
                    ax.text(j, i, f"{v:.0f}" if v >= 10 or v == 0 else f"{v:.1f}", ha="center", va="center",
                            fontsize=7, color="white" if v > 55 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label="% of the true class")
    return _save(fig, path)


def spike_raster(trace: Mapping[str, Mapping], path: str | Path, *, sample: int = 0, max_neurons: int = 200,
                 output_labels: Sequence[str] | None = None, title: str = "") -> Path:
    """Spike raster of every layer of one sample: a panel per layer, neurons x time steps.

    Args:
        trace: ``SpikingCNN1d.trace(x)`` output: layer name -> ``{"spikes": (T, B, n)}``
            (tensors or arrays; an ``"input"`` entry, for spike-encoded inputs, is drawn first).
        path: where the PNG goes.
        sample: which batch element to draw.
        max_neurons: at most this many neurons per layer, the most active ones
            (:func:`pick_neurons`), ranked top to bottom by spike count.
        output_labels: names of the output neurons (class names): the ``lif_out`` panel's rows are labelled.
        title: figure title.

    Returns:
        ``path`` as a ``Path``. Delta-encoded inputs (-1/+1 events) are drawn blue/red.
    """
    layers = [n for n in trace if "spikes" in trace[n]]
    fig = _figure(max(6.0, 2.6 * len(layers)), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(layers), squeeze=False)[0])
    for ax, name in zip(axes, layers):
        spk = as_numpy(trace[name]["spikes"])[:, sample, :]              # (T, n)
        mem = as_numpy(trace[name]["mem"])[:, sample, :] if "mem" in trace[name] else None
        T, n = spk.shape
        idx = pick_neurons(spk, max_neurons, mem)
        img = spk[:, idx].T                                           # (k, T)
        signed = bool((img < 0).any())                                # delta events: -1 (blue) / +1 (red)
        ax.imshow(img, aspect="auto", interpolation="nearest", cmap="bwr" if signed else "Greys",
                  vmin=-1 if signed else 0, vmax=1, extent=(0.5, T + 0.5, len(idx) - 0.5, -0.5))
        if name == "lif_out" and output_labels is not None and n == len(output_labels):
            ax.set_yticks(range(len(idx)), [output_labels[i] for i in idx], fontsize=7)
        rate = np.abs(spk).mean()
        unit = "input features" if name == "input" else "neurons"
        ax.set_title(f"{_pretty_layer(name)}\n{len(idx)} of {n:,} {unit}, rate {rate:.3f}", fontsize=9)
        ax.set_xlabel("time step")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_ylabel("neuron (ranked by spike count)")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def membrane_traces(trace: Mapping[str, Mapping], path: str | Path, *, sample: int = 0, n_neurons: int = 5,
                    threshold: float | None = 1.0, output_labels: Sequence[str] | None = None,
                    title: str = "") -> Path:
    """Membrane potential over time of a few neurons per LIF layer for one sample.

    Args:
        trace: ``SpikingCNN1d.trace(x)`` output; layers with a ``"mem"`` (T, B, n) entry are drawn.
        path: where the PNG goes.
        sample: which batch element to draw.
        n_neurons: neurons per layer, spread over the layer's activity range
            (:func:`spread_neurons`; for ``lif_out`` the most active outputs); a circle
            marks each step at which the neuron spiked.
        threshold: firing threshold drawn as a dashed line (None: not drawn).
        output_labels: names of the output neurons (class names), used in the
            legend of the ``lif_out`` panel.
        title: figure title.

    Returns:
        ``path`` as a ``Path``.
    """
    layers = [n for n in trace if "mem" in trace[n]]
    fig = _figure(max(6.0, 3.0 * len(layers)), 3.6)
    axes = np.atleast_1d(fig.subplots(1, len(layers), squeeze=False)[0])
    for ax, name in zip(axes, layers):
        mem = as_numpy(trace[name]["mem"])[:, sample, :]
        spk = as_numpy(trace[name]["spikes"])[:, sample, :] if "spikes" in trace[name] else np.zeros_like(mem)
        T = mem.shape[0]
        t = np.arange(1, T + 1)
        chosen = pick_neurons(spk, n_neurons, mem) if name == "lif_out" else spread_neurons(spk, n_neurons, mem)
        for i in chosen:
            label = (output_labels[i] if name == "lif_out" and output_labels is not None and i < len(output_labels)
                     else f"#{i}")
            line, = ax.plot(t, mem[:, i], marker=".", markersize=3, linewidth=1, label=label)
            fired = spk[:, i] > 0
            ax.plot(t[fired], mem[fired, i], "o", color=line.get_color(), markersize=5, markerfacecolor="none")
        if threshold is not None:
            ax.axhline(threshold, color="k", linestyle="--", linewidth=0.8)
        ax.set_title(_pretty_layer(name), fontsize=9)
        ax.set_xlabel("time step")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best", title="neuron", title_fontsize=6)
    axes[0].set_ylabel("membrane potential (threshold = 1, dashed)" if threshold == 1.0
                       else "membrane potential")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def firing_rates(rates: Mapping[str, float], path: str | Path, title: str = "Firing rate per layer", *,
                 ylabel: str = "spikes per neuron per time step", fmt: str = "{:.3f}") -> Path:
    """Bar chart of the firing rate of each layer.

    Args:
        rates: layer name -> spikes per neuron per time step (0 to 1), or another rate
            (e.g. Hz) named by ``ylabel``.
        path: where the PNG goes.
        title: figure title (say which network and where the rates come from).
        ylabel: y-axis label (the rate's unit).
        fmt: format of the value written over each bar.

    Returns:
        ``path`` as a ``Path``.
    """
    names = list(rates)
    vals = [float(rates[n]) for n in names]
    fig = _figure(max(4.5, 1.1 * len(names) + 2), 3.4)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    ax.bar(x, vals, color=KEPT_COLOUR)
    for i, v in enumerate(vals):
        ax.text(i, v, fmt.format(v), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [_pretty_layer(n) for n in names], fontsize=8)
    ax.set_ylim(0, max(vals + [0.01]) * 1.2)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def accuracy_tradeoff(costs: Sequence[float], accuracies: Sequence[float], path: str | Path, *, xlabel: str,
                      title: str, log_x: bool | None = None, marks: Mapping[str, int] | None = None,
                      note: str = "") -> Path:
    """Validation balanced accuracy of each trial against a cost, Pareto front marked.

    Args:
        costs: per trial, the cost to minimise (num_steps, or energy per inference in pJ).
        accuracies: per trial, best validation balanced accuracy as a fraction in [0, 1].
        path: where the PNG goes.
        xlabel: x-axis label with its unit.
        title: figure title.
        log_x: logarithmic x axis; None = when the costs span more than a factor 20. Never
            when a cost is 0 or negative: such a trial (and a Pareto point with it) could
            not be drawn on a log axis, so the axis stays linear and every trial is shown.
        marks: label -> trial index to annotate (e.g. ``{"best": 3, "trade-off": 7}``).
        note: small text under the plot (the energy convention).

    Returns:
        ``path`` as a ``Path``. The legend is outside the axes, so it hides no point.

    Raises:
        ValueError: empty input or lengths differ.
    """
    c = np.asarray(costs, dtype=float)
    a = 100 * np.asarray(accuracies, dtype=float)
    if len(c) == 0 or len(c) != len(a):
        raise ReportError(f"need equal, non-empty cost and accuracy lists, got {len(c)} and {len(a)}")
    front = pareto_front(list(zip(c, a)))
    fig = _figure(7.8, 4.3)
    ax = fig.add_subplot()
    ax.scatter(c, a, s=28, color=DROPPED_COLOUR, edgecolor="#555555", linewidth=0.5, label="trial", zorder=2)
    fc, fa = c[front], a[front]
    ax.step(fc, fa, where="post", color=FRONT_COLOUR, linewidth=1, alpha=0.7, zorder=1)
    ax.scatter(fc, fa, s=40, color=FRONT_COLOUR, label=f"Pareto front ({len(front)})", zorder=3)
    for label, i in (marks or {}).items():
        if i is not None and 0 <= i < len(c):
            ax.annotate(label, (c[i], a[i]), xytext=(6, -12), textcoords="offset points", fontsize=8,
                        arrowprops={"arrowstyle": "-", "linewidth": 0.5})
    finite = c[np.isfinite(c)]
    positive = finite[finite > 0]
    if log_x is None:
        log_x = len(positive) > 1 and positive.max() / positive.min() > 20
    if log_x and len(positive) and len(positive) == len(finite):  # a cost <= 0 has no place on a log axis
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("best validation balanced accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    if note:
        fig.text(0.01, 0.005, note, fontsize=6, color="#444444", ha="left", va="bottom")
        fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))
    return _save(fig, path)


def nas_generations(generations: Sequence[int], fitness: Sequence[float], path: str | Path, *,
                    parent_line: Sequence[tuple[int, float]] = (), failed: Sequence[bool] | None = None,
                    train_longer: Sequence[bool] | None = None, best: int | None = None,
                    title: str = "") -> Path:
    """Validation accuracy (fitness) of every individual of an architecture search, by generation.

    Args:
        generations: per individual, its generation (0 = the random initial population).
        fitness: per individual, its fitness as a fraction in [0, 1] (validation accuracy).
        path: where the PNG goes.
        parent_line: ``(generation, fitness)`` of the parent kept after each generation (the
            (1+lambda) selection), drawn as a step line.
        failed: per individual, True for a failed evaluation (drawn as a cross at its fitness).
        train_longer: per individual, True for a "train longer" offspring (hollow marker).
        best: index of the search's best individual (annotated).
        title: figure title.

    Returns:
        ``path`` as a ``Path``. Individuals of one generation are spread a little along x so
        that equal fitness values stay visible.

    Raises:
        ValueError: empty input or lengths differ.
    """
    g = np.asarray(generations, dtype=float)
    a = 100 * np.asarray(fitness, dtype=float)
    if len(g) == 0 or len(g) != len(a):
        raise ReportError(f"need equal, non-empty generation and fitness lists, got {len(g)} and {len(a)}")
    failed = np.zeros(len(g), bool) if failed is None else np.asarray(failed, bool)
    longer = np.zeros(len(g), bool) if train_longer is None else np.asarray(train_longer, bool)
    x = g.copy()
    for gen in np.unique(g):  # spread each generation's individuals over [-0.2, 0.2] around it
        idx = np.flatnonzero(g == gen)
        if len(idx) > 1:
            x[idx] = gen + np.linspace(-0.2, 0.2, len(idx))
    fig = _figure(7.8, 4.3)
    ax = fig.add_subplot()
    ok = ~failed
    for mask, kw in ((ok & ~longer, {"color": KEPT_COLOUR, "label": "individual"}),
                     (ok & longer, {"facecolor": "none", "edgecolor": KEPT_COLOUR, "label": "train longer (parent)"})):
        if mask.any():
            ax.scatter(x[mask], a[mask], s=30, zorder=3, **kw)
    if failed.any():
        ax.scatter(x[failed], a[failed], s=36, marker="x", color="#7f7f7f", zorder=3, label="failed")
    if parent_line:
        pg = [float(p[0]) for p in parent_line]
        pa = [100 * float(p[1]) for p in parent_line]
        # held to the right of the last generation, so that the final parent's level shows
        ax.step(pg + [pg[-1] + 0.3], pa + [pa[-1]], where="post", color=FRONT_COLOUR, linewidth=1.2, zorder=2,
                label="parent after generation")
        ax.plot(pg, pa, "o", color=FRONT_COLOUR, markersize=3, zorder=2)
    if best is not None and 0 <= best < len(g):
        ax.annotate("best", (x[best], a[best]), xytext=(8, -14), textcoords="offset points", fontsize=8,
                    arrowprops={"arrowstyle": "-", "linewidth": 0.5})
    ax.set_xticks(np.unique(g).astype(int))
    ax.set_xlabel("generation (0: random initial population)")
    ax.set_ylabel("validation accuracy (%) = fitness")
    ax.set_title(title or f"{len(g)} individuals: fitness by generation", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return _save(fig, path)


def nas_accuracy_parameters(parameters: Sequence[float], fitness: Sequence[float], path: str | Path, *,
                            front: Sequence[int] = (), best: int | None = None, title: str = "",
                            note: str = "") -> Path:
    """Validation accuracy against the number of parameters of every individual, the search's front marked.

    Args:
        parameters: per individual, its trainable parameters.
        fitness: per individual, its fitness as a fraction in [0, 1] (validation accuracy).
        path: where the PNG goes.
        front: indices of the individuals on the search's Pareto front (``front.json``), drawn
            in red and joined by a step line.
        best: index of the search's best individual (annotated).
        title: figure title.
        note: small text under the plot.

    Returns:
        ``path`` as a ``Path``. The x axis is logarithmic when the counts span more than a
        factor 20 (and are all positive).

    Raises:
        ValueError: empty input or lengths differ.
    """
    c = np.asarray(parameters, dtype=float)
    a = 100 * np.asarray(fitness, dtype=float)
    if len(c) == 0 or len(c) != len(a):
        raise ReportError(f"need equal, non-empty parameter and fitness lists, got {len(c)} and {len(a)}")
    fig = _figure(7.8, 4.3)
    ax = fig.add_subplot()
    ax.scatter(c, a, s=28, color=DROPPED_COLOUR, edgecolor="#555555", linewidth=0.5, label="individual", zorder=2)
    front = sorted({int(i) for i in front if 0 <= int(i) < len(c)}, key=lambda i: (c[i], -a[i]))
    if front:
        ax.step(c[front], a[front], where="post", color=FRONT_COLOUR, linewidth=1, alpha=0.7, zorder=1)
        ax.scatter(c[front], a[front], s=40, color=FRONT_COLOUR, label=f"front.json ({len(front)})", zorder=3)
    if best is not None and 0 <= best < len(c):
        ax.annotate("best", (c[best], a[best]), xytext=(6, -12), textcoords="offset points", fontsize=8,
                    arrowprops={"arrowstyle": "-", "linewidth": 0.5})
    finite = c[np.isfinite(c)]
    if len(finite) > 1 and (finite > 0).all() and finite.max() / finite.min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("validation accuracy (%) = fitness")
    ax.set_title(title or f"{len(c)} individuals: accuracy vs size", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    if note:
        fig.text(0.01, 0.005, note, fontsize=6, color="#444444", ha="left", va="bottom")
        fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))
    return _save(fig, path)


def as_numpy(x) -> np.ndarray:
    """A tensor or array as a float numpy array (detached, on the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=float)


__all__ = ["normalize_confusion", "pareto_front", "pick_neurons", "spread_neurons", "class_frequencies", "training_curves",
           "confusion_matrix", "spike_raster", "membrane_traces", "firing_rates", "accuracy_tradeoff",
           "nas_generations", "nas_accuracy_parameters"]


def _label(text) -> str:
    """``text`` for a matplotlib label: ``$`` escaped, so a name is never read as mathtext."""
    return str(text).replace("$", r"\$")


def repeat_scores(models: Sequence[Mapping], path: str | Path, *, metric: str = "balanced_accuracy",
                  best_baseline: str | None = None, title: str = "") -> Path:
    """Test ``metric`` of each model over repeats (seeds or folds): a dot per repeat, a bar for the
    mean and whiskers for the sample sd; baselines in grey, the best one outlined.

    Args:
        models: summary.json model entries (``name``, ``kind``, ``stats[metric]`` with ``values``,
            ``mean``, ``sd``), fractions in [0, 1].
        path: where the PNG goes.

    Raises:
        ReportError: no model has the metric.
    """
    rows = [m for m in models if (m.get("stats") or {}).get(metric, {}).get("values")]
    if not rows:
        raise ReportError(f"no model has {metric} values to draw")
    fig = _figure(max(5.0, 0.9 * len(rows) + 2), 4.2)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)  # the dots' horizontal jitter only
    lows = []
    for i, m in enumerate(rows):
        s = m["stats"][metric]
        vals = 100 * np.asarray(s["values"], dtype=float)
        lows.append(vals.min())
        base = m.get("kind") == "baseline"
        colour = DROPPED_COLOUR if base else KEPT_COLOUR
        ax.bar(i, 100 * s["mean"], color=colour, alpha=0.5, width=0.6,
               edgecolor="black" if m["name"] == best_baseline else colour, linewidth=1.5 if m["name"] == best_baseline else 0.5)
        if s.get("sd") is not None:
            ax.errorbar(i, 100 * s["mean"], yerr=100 * s["sd"], color="black", capsize=4, linewidth=1)
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(vals)), vals, s=14, color="black", zorder=3)
    lo = max(0.0, min(lows) - 5)
    ax.set_ylim(lo, 100)
    ax.set_xticks(range(len(rows)), [_label(m["name"]) for m in rows], rotation=20)
    ax.set_ylabel(f"test {metric.replace('_', ' ')} (%)")
    ax.set_title(title or f"Test {metric.replace('_', ' ')} over repeats: bar mean, whiskers sd, dots repeats "
                 f"(y axis from {lo:.0f}%)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def repeat_energy_accuracy(models: Sequence[Mapping], path: str | Path, *, baseline: Mapping | None = None,
                           note: str = "") -> Path:
    """Each network's mean test balanced accuracy against its mean energy per inference over repeats
    (error bars: sample sd on both axes, energy on a log axis), with the best baseline's mean as a
    dashed line.

    Args:
        models: summary.json model entries with ``stats.balanced_accuracy`` and ``stats.energy_pj``.
        baseline: the best baseline's summary entry (or None).

    Raises:
        ReportError: no network has both values.
    """
    rows = [m for m in models if {"balanced_accuracy", "energy_pj"} <= set(m.get("stats") or {})
            and m["stats"]["energy_pj"].get("mean")]
    if not rows:
        raise ReportError("no network has both an energy and a balanced accuracy")
    fig = _figure(7.0, 4.2)
    ax = fig.add_subplot()
    for m in rows:
        e, a = m["stats"]["energy_pj"], m["stats"]["balanced_accuracy"]
        ax.errorbar(e["mean"] / 1e6, 100 * a["mean"], xerr=(e.get("sd") or 0) / 1e6, yerr=100 * (a.get("sd") or 0),
                    fmt="o", color=KEPT_COLOUR, capsize=3, markersize=6)
        ax.annotate(_label(m["name"]), (e["mean"] / 1e6, 100 * a["mean"]), xytext=(6, 4), textcoords="offset points",
                    fontsize=8)
    if baseline is not None and (baseline.get("stats") or {}).get("balanced_accuracy"):
        b = 100 * baseline["stats"]["balanced_accuracy"]["mean"]
        ax.axhline(b, color=FRONT_COLOUR, linestyle="--", linewidth=1, label=f"{_label(baseline['name'])} (best baseline) {b:.2f}%")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xscale("log")
    ax.margins(x=0.15, y=0.1)  # room for the names
    ax.set_xlabel("energy per inference (µJ, log scale)")
    ax.set_ylabel("test balanced accuracy (%)")
    ax.set_title("Accuracy against energy over repeats (mean ± sd)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    if note:
        fig.text(0.01, 0.005, note, fontsize=6, color="#444444", ha="left", va="bottom")
        fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))
    return _save(fig, path)
