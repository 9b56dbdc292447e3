"""ASHA versus no scheduler (FIFO) on the same Ray Tune experiment, at equal trial count and seed.

Runs the registered ``cnn_search`` experiment (``spiking/search/experiments/cnn_search.toml``)
twice through :func:`spiking.search.run_experiment` on the same shards: once with the file's
ASHA scheduler, once with no early stopping (Ray Tune's ``FIFOScheduler``). Everything else is
equal: the budget (trials, epochs, train-row subset, batch size, narrowed space), the seed
(Optuna TPE sampler, per-trial architecture seeds, training, train-row subset), the
resources. Each run gets its own storage folder under a temporary directory (deleted at the
end unless ``--keep``). Prints a Markdown table:

    scheduler | wall s | trials | epochs trained (sum) | stopped early | best val bal. acc | ...

How the scheduler is switched off: ``run_experiment`` takes a parsed experiment. This script
takes the file's content as read (``load_experiment("cnn_search").raw``), sets
``[scheduler] type = "fifo"`` (a value the registry accepts: ``SCHEDULERS = ("asha",
"fifo")``) and the budget overrides from the command line, re-checks it with
``registry.parse_experiment`` and passes that in-memory experiment to ``run_experiment``.
Nothing on disk is changed. The ASHA run goes
through the same path (scheduler type left at "asha") so both runs see the same budget.

Equal seed does not mean identical trials beyond the first ``n_startup_trials``: those are
drawn at random by the seeded TPE sampler and are the same configs in both runs; later TPE
suggestions depend on the results of finished trials (which ASHA truncates) and on the order
in which concurrent trials finish.

Usage (from the repository root)::

    .venv/bin/python benchmarks/tune_asha_vs_fifo.py                      # smoke budget as in the file
    .venv/bin/python benchmarks/tune_asha_vs_fifo.py --trials 8 --epochs 6 --max-train-rows 600
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from spiking.search import runner  # noqa: E402
from spiking.search.registry import BUDGETS, load_experiment, parse_experiment  # noqa: E402
from spiking.specs.names import DEFAULT_SHARDS  # noqa: E402

EXPERIMENT = "cnn_search"
SCHEDULER_LABEL = {"asha": "ASHA", "fifo": "none (FIFO)"}


def build_experiment(scheduler: str, budget: str, overrides: dict):
    """``cnn_search`` as in its file, with ``[scheduler] type`` and budget overrides applied (checked)."""
    base = load_experiment(EXPERIMENT)
    raw = copy.deepcopy(base.raw)
    raw.setdefault("scheduler", {})["type"] = scheduler
    raw["budgets"][budget].update({k: v for k, v in overrides.items() if v is not None})
    return parse_experiment(EXPERIMENT, raw, source=f"{base.source} (in memory: scheduler={scheduler}, "
                                                      f"budget {budget} overrides {overrides})")


def _trial_train_seconds(exp_dir: Path) -> float | None:
    """Sum over trials of the last reported ``train_seconds`` (pure training time, from each trial's result.json)."""
    total, found = 0.0, False
    for d in sorted(exp_dir.glob("trial_*")):
        last = None
        f = d / "result.json"
        if not f.is_file():
            continue
        for line in f.read_text().splitlines():
            if line.strip():
                last = json.loads(line)
        if last and "train_seconds" in last:
            total += float(last["train_seconds"])
            found = True
    return total if found else None


def run_one(scheduler: str, args, overrides: dict, storage: Path) -> dict:
    exp = build_experiment(scheduler, args.budget, overrides)
    b = exp.budget(args.budget)

    print(f"\n=== {EXPERIMENT} scheduler={scheduler}: {b.trials} trials x {b.epochs} epochs, "
          f"max_train_rows={b.max_train_rows}, batch_size={b.batch_size}, grace_period={b.grace_period}, "
          f"reduction_factor={b.reduction_factor:g}, max_concurrent={b.max_concurrent}, seed={args.seed}",
          flush=True)
    t0 = time.perf_counter()
    out = runner.run_experiment(exp, shards=args.shards, budget=args.budget, storage=str(storage),
                                seed=args.seed, ray_num_cpus=args.ray_cpus, max_concurrent=args.max_concurrent,
                                cpus_per_trial=args.cpus_per_trial, verbose=args.verbose)
    wall = time.perf_counter() - t0
    spec = out["results"]["search"]["spec"]
    assert spec["scheduler"]["type"] == scheduler, spec["scheduler"]  # what the runner actually ran
    trials = out["trials"]
    best = out["best"]
    model = next(m for m in out["results"]["models"] if m["name"].endswith(":best"))
    return {
        "scheduler": scheduler,
        "wall_s": wall,
        "trials": len(trials),
        "errors": sum(t["error"] is not None for t in trials),
        "epochs": sum(int(t["epochs"]) for t in trials),
        "max_epochs": b.trials * b.epochs,
        "stopped_early": sum(bool(t["stopped_early"]) for t in trials),
        "best_val": float(best["val_balanced_accuracy"]),
        "best_epoch": int(best["epoch"]),
        "best_test": float(model["test"]["balanced_accuracy"]),
        "train_s": _trial_train_seconds(storage / EXPERIMENT),
        "epochs_per_trial": [int(t["epochs"]) for t in trials],
        "budget": b.as_dict(),
        "train_rows": int(out["results"]["search"]["train_rows"]),
        "split_sizes": out["results"]["split"].get("sizes"),
    }


def markdown(rows: list[dict]) -> str:
    head = ("| scheduler | wall time (s) | trials | epochs trained (sum) | trials stopped early "
            "| best val. balanced acc. | test balanced acc. of best | training s (sum over trials) |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        train_s = f"{r['train_s']:.1f}" if r["train_s"] is not None else "-"
        lines.append(f"| {SCHEDULER_LABEL[r['scheduler']]} | {r['wall_s']:.1f} | {r['trials']} "
                     f"| {r['epochs']} of {r['max_epochs']} | {r['stopped_early']} "
                     f"| {100 * r['best_val']:.2f}% (epoch {r['best_epoch']}) | {100 * r['best_test']:.2f}% "
                     f"| {train_s} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", default=str(ROOT / DEFAULT_SHARDS), help="Parquet shards (spiking ingest)")
    p.add_argument("--budget", choices=BUDGETS, default="smoke", help="budget of the file to start from (default smoke)")
    p.add_argument("--trials", type=int, default=None, help="override the budget's trials")
    p.add_argument("--epochs", type=int, default=None, help="override the budget's epochs (ASHA max_t)")
    p.add_argument("--max-train-rows", type=int, default=None, help="override the budget's train-row subset")
    p.add_argument("--batch-size", type=int, default=None, help="override the budget's batch size")
    p.add_argument("--grace-period", type=int, default=None, help="override ASHA's grace period (epochs)")
    p.add_argument("--reduction-factor", type=float, default=None, help="override ASHA's reduction factor")
    p.add_argument("--n-startup-trials", type=int, default=None, help="override TPE's random startup trials")
    p.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: the budget's)")
    p.add_argument("--cpus-per-trial", type=float, default=None, help="CPUs per trial (default: the file's)")
    p.add_argument("--ray-cpus", type=int, default=os.cpu_count(), help="CPUs of the embedded Ray (default: all)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--order", default="asha,fifo", help="run order, comma-separated (default asha,fifo)")
    p.add_argument("--storage", default=None, help="parent folder for the two storages (default: a new temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the storage folder (default: delete it at the end)")
    p.add_argument("--verbose", type=int, default=0, help="Ray Tune verbosity (default 0)")
    args = p.parse_args(argv)

    order = [s.strip() for s in args.order.split(",") if s.strip()]
    if sorted(order) != ["asha", "fifo"]:
        p.error("--order must name asha and fifo once each")
    if not Path(args.shards).exists() and "://" not in args.shards:
        p.error(f"shards {args.shards} not found; create them with `spiking ingest` (see benchmarks/README.md)")
    overrides = {"trials": args.trials, "epochs": args.epochs, "max_train_rows": args.max_train_rows,
                 "batch_size": args.batch_size, "grace_period": args.grace_period,
                 "reduction_factor": args.reduction_factor, "n_startup_trials": args.n_startup_trials}

    # Pay imports, the first read of the shards and a first Ray start before either timed run, so the order does not favour one.
    import ray  # noqa: F401
    import sklearn  # noqa: F401
    import torch  # noqa: F401

    from spiking.data.ingest import load_dataset

    load_dataset(args.shards)
    if not ray.is_initialized() and not os.environ.get("RAY_ADDRESS"):  # the first start of Ray is the slowest
        ray.init(address="local", num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
        ray.shutdown()

    parent = Path(args.storage) if args.storage else Path(tempfile.mkdtemp(prefix="tune-asha-vs-fifo-"))
    parent.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for sched in order:
            storage = parent / sched
            if storage.exists():
                shutil.rmtree(storage)
            rows.append(run_one(sched, args, overrides, storage))
    finally:
        if not args.keep:
            shutil.rmtree(parent, ignore_errors=True)
    rows.sort(key=lambda r: r["scheduler"])  # ASHA first in the table
    b = rows[0]["budget"]
    print(f"\n{EXPERIMENT}, budget {args.budget} with overrides {({k: v for k, v in overrides.items() if v is not None})}: "
          f"{b['trials']} trials x {b['epochs']} epochs, max_train_rows={b['max_train_rows']} "
          f"(train rows used {rows[0]['train_rows']}; split sizes {rows[0]['split_sizes']}), "
          f"batch_size={b['batch_size']}, ASHA grace_period={b['grace_period']} reduction_factor={b['reduction_factor']:g}, "
          f"max_concurrent={args.max_concurrent or b['max_concurrent']}, seed={args.seed}, ray cpus={args.ray_cpus}; "
          f"shards {args.shards}; {platform.machine()}, {os.cpu_count()} cores; run order {','.join(order)}; "
          f"storage {parent}{'' if args.keep else ' (deleted)'}\n")
    print(markdown(rows))
    for r in rows:
        print(f"\n{SCHEDULER_LABEL[r['scheduler']]}: epochs per trial {r['epochs_per_trial']}, errors {r['errors']}")
    return 0 if not any(r["errors"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
