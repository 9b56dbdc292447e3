"""Balanced accuracy and energy of a QCFS conversion against its number of time steps.

For each run folder given (one seed of ``spiking run --cnn-activation qcfs --snn-mode convert
--seeds ...``), the saved QCFS CNN (``cnn.pt``) is converted again at every step count of
``--steps`` (the same conversion as the run's: ``spiking.training.jobs.converted_network`` with the
run's SNN settings, only ``num_steps`` changed), scored once on that run's test part, and its
operations counted (``spiking.models.operations.count_operations``, 45 nm convention). Nothing is
trained and nothing in the run folders is written. Prints, per step count, the test balanced
accuracy (mean +- sample sd over the runs), its mean difference from each run's own CNN, the
energy per inference relative to the CNN, and the mean firing rate per spiking layer.

Run: .venv/bin/python benchmarks/qcfs_steps.py runs/qcfs-top10 --steps 1,2,4,8
"""
from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score

from spiking.artifacts.checkpoint import load_model, network_inputs
from spiking.data.ingest import load_dataset, locate_shards
from spiking.data.preprocess.prepare import load_prepared
from spiking.models.operations import count_operations
from spiking.specs.run import RunConfig
from spiking.training.jobs import converted_network, snn_settings
from spiking.training.loop import predict
from spiking.training.objectives import objective_for


def run_folders(paths: list[str]) -> list[Path]:
    """The run folders: each path itself, or its ``seed_*``/``fold_*`` folders for a repeated run."""
    out = []
    for p in map(Path, paths):
        subs = sorted(q for q in p.glob("seed_*") if q.is_dir()) + sorted(q for q in p.glob("fold_*") if q.is_dir())
        out += subs or [p]
    return out


def score(run: Path, steps: list[int]) -> dict:
    """Test balanced accuracy, energy and firing rates of the run's CNN and of its conversion at each step count."""
    cfg = RunConfig.load(run / "config.json")
    prep = load_prepared(load_dataset(locate_shards(cfg.data.shards, run) or cfg.data.shards), run)
    cnn, meta = load_model(run / "cnn.pt")
    X = network_inputs(meta, prep, "test")
    y = prep.y["test"]
    res = {"cnn": {"bacc": balanced_accuracy_score(y, predict(cnn, objective_for(meta), X)),
                   "energy_pj": count_operations(cnn, X)["energy_pj"]}}
    for T in steps:
        cfg.snn.num_steps = T
        snn, objective, _ = converted_network(cnn, prep, snn_settings(cfg.snn), seed=0)
        eff = count_operations(snn, X)
        res[T] = {"bacc": balanced_accuracy_score(y, predict(snn, objective, X)), "energy_pj": eff["energy_pj"],
                  "rates": [n["firing_rate"] for n in eff["neurons"]]}
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run folders (or a repeated run's folder holding seed_*/fold_*)")
    p.add_argument("--steps", default="1,2,4,8", help="comma-separated time steps")
    a = p.parse_args()
    steps = [int(s) for s in a.steps.split(",")]
    torch.set_num_threads(2)
    runs = run_folders(a.runs)
    scores = [score(r, steps) for r in runs]
    print(f"# {datetime.date.today()} {platform.machine()} {torch.get_num_threads()} threads; {len(runs)} runs: "
          + ", ".join(r.name for r in runs))
    cnn = np.array([s["cnn"]["bacc"] for s in scores]) * 100
    print("| model | balanced accuracy % | vs its CNN (points) | energy / CNN | firing rate per layer "
          "(lif1, lif2, lif3, lif_out) |\n|---|---|---|---|---|")
    print(f"| QCFS CNN | {cnn.mean():.2f} ± {cnn.std(ddof=1) if len(cnn) > 1 else 0:.2f} | - | 1 | - |")
    for T in steps:
        b = np.array([s[T]["bacc"] for s in scores]) * 100
        d = b - cnn
        e = np.array([s[T]["energy_pj"] / s["cnn"]["energy_pj"] for s in scores])
        rates = np.mean([s[T]["rates"] for s in scores], axis=0)
        sd = lambda v: v.std(ddof=1) if len(v) > 1 else 0.0  # noqa: E731
        print(f"| converted SNN, T = {T} | {b.mean():.2f} ± {sd(b):.2f} | {d.mean():+.2f} ± {sd(d):.2f} | "
              f"{e.mean():.3f} | {', '.join(f'{r:.3f}' for r in rates)} |")


if __name__ == "__main__":
    main()
