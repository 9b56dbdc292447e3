"""``spiking tune EXPERIMENT``: the command-line face of :func:`spiking.search.run_experiment`.

Register it in ``spiking/cli/main.py``'s ``build_parser``::

    from ..search.cli import add_tune_parser
    add_tune_parser(sub)          # sets func=cmd_tune

Errors raised before any trial (unknown experiment, storage not writable, missing
weight source, invalid space) are ``ValueError`` subclasses, which ``main`` prints
as ``spiking: error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse

DEFAULT_SHARDS = "data/shards/tcga-mirna-rpm"


def add_tune_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``tune`` sub-command to an ``argparse`` sub-parsers object; returns the new parser."""
    from .registry import BUDGETS, list_experiments
    from .storage import DEFAULT_STORAGE

    names = list_experiments()
    p = subparsers.add_parser(
        "tune", help="run a registered hyperparameter/architecture search with Ray Tune",
        description="Run a registered search experiment with Ray Tune (Optuna TPE + ASHA), checkpoint every epoch "
                    "of every trial in the storage, then export the best (and for SNNs the trade-off) configuration "
                    "and score it once on the test split. Experiments: " + ", ".join(names))
    p.add_argument("experiment", choices=names, metavar="EXPERIMENT", help="one of: " + ", ".join(names))
    p.add_argument("--budget", choices=BUDGETS, default="smoke",
                   help="smoke: minutes on 2 CPU cores; small; paper: the study's epochs (default smoke)")
    p.add_argument("--storage", default=None,
                   help=f"local folder or s3://bucket/prefix (default {DEFAULT_STORAGE}); S3 settings from "
                        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL/SPIKING_S3_ENDPOINT")
    p.add_argument("--resume", action="store_true", help="continue an interrupted experiment in the storage")
    p.add_argument("--overwrite", action="store_true", help="delete an existing experiment folder and start over")
    p.add_argument("--cpus-per-trial", type=float, default=None, help="CPUs per trial (default: the experiment's)")
    p.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: the budget's)")
    p.add_argument("--gpus-per-trial", type=float, default=None,
                   help="GPU fraction per trial, e.g. 0.25 (default: the experiment's; ignored where Ray sees no GPU)")
    p.add_argument("--shards", default=DEFAULT_SHARDS, help="Parquet shards folder or URI")
    p.add_argument("--weights", default=None,
                   help="weight source of a weight-transfer SNN: a CNN experiment name or a checkpoint URI "
                        "(default: the experiment's, e.g. cnn_pt2 in the same storage)")
    p.add_argument("--seed", type=int, default=42, help="seed of the search, the architectures and training")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the embedded Ray (when RAY_ADDRESS is unset)")
    p.add_argument("--quiet", action="store_true", help="no Ray Tune progress tables")
    p.set_defaults(func=cmd_tune)
    return p


def cmd_tune(a) -> int:
    """Handler of ``spiking tune``; returns the exit code."""
    from .runner import run_experiment

    out = run_experiment(a.experiment, shards=a.shards, budget=a.budget, storage=a.storage, resume=a.resume,
                         cpus_per_trial=a.cpus_per_trial, max_concurrent=a.max_concurrent, seed=a.seed,
                         gpus_per_trial=a.gpus_per_trial,
                         weights=a.weights, overwrite=a.overwrite, ray_num_cpus=a.ray_cpus,
                         verbose=0 if a.quiet else 1)
    s = out["results"]["search"]
    print(f"\n{out['experiment']} ({out['budget']}): {s['n_trials']} trials, {s['n_stopped_early']} stopped early "
          f"by ASHA, {s['n_errors']} errors")
    for role in ("best", "tradeoff"):
        d = out.get(role)
        if d:
            print(f"{role}: validation balanced accuracy {d['val_balanced_accuracy']:.4f} at epoch {d['epoch']}, "
                  f"config {d['config']}")
    print(f"\nTest split ({out['results']['split']['sizes']['test']} samples, touched once):")
    print(out["table"])
    print(f"\nresults: {out['path']} (results.json, best_config.json, best_model.pt); {out['seconds']:.1f} s")
    return 0
