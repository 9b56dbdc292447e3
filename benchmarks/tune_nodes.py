"""The same smoke search on a simulated Ray cluster with 1 and with 2 worker nodes: trials per minute, overhead per trial.

For each worker count N (default 1, then 2) the script starts a fresh Ray cluster on this machine with
``ray.cluster_utils.Cluster``: a head node with 0 CPUs (it runs the driver and the Tune controller, no trial)
and N worker nodes with 1 CPU each, all separate Ray processes on 127.0.0.1 with token authentication (a
token of the script's own, in ``RAY_AUTH_TOKEN``; nothing written to ``~/.ray``) and a Ray temp folder of their
own. It connects to it (``ray.init(address=...)``), so :func:`spiking.search.run_experiment` uses that
cluster and leaves it running, runs the experiment, and shuts the cluster down (also on failure).
Storage is a local folder, seen by every simulated node (what a shared S3 bucket gives a real cluster).

The experiment is the registered ``cnn_search`` at the ``smoke`` budget, with two changes applied in memory
(as ``benchmarks/tune_asha_vs_fifo.py`` does; nothing on disk changes): the scheduler is FIFO unless
``--scheduler asha`` (so both runs train every trial for all its epochs and do the same amount of work;
with ASHA the number of epochs trained depends on the order in which trials finish), and the budget
overrides given on the command line. ``max_concurrent`` stays the budget's (2): on 1 worker node the
second trial waits for the CPU.

Reported per run: wall seconds of the whole ``run_experiment`` call (data preparation, trials, export and
the single test-split evaluation; not the cluster start, reported apart), the seconds of Ray Tune's
``Tuner.fit`` within it (trial scheduling, actor starts, the trials, checkpoints; timed by wrapping the
tuner ``run_experiment`` builds), trials, epochs, trials per minute (of wall time), the sum of the trials'
training seconds (``train_seconds``), and the overhead per trial:

    overhead per trial = (N x seconds - sum of training seconds) / trials

i.e. worker-CPU seconds not spent training, per trial (for N = 1: wall minus training, per trial),
once over the wall time and once over ``Tuner.fit`` only. Also which worker node ran how many trials
(the ``node_id`` each trial records in ``trials.json``).

Usage (from the repository root)::

    .venv/bin/python benchmarks/tune_nodes.py                      # cnn_search smoke: 6 trials x 4 epochs
    .venv/bin/python benchmarks/tune_nodes.py --trials 12 --nodes 1,2
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from spiking.search import runner  # noqa: E402
from spiking.search.registry import BUDGETS, load_experiment, parse_experiment  # noqa: E402
from spiking.specs.names import DEFAULT_SHARDS  # noqa: E402

EXPERIMENT = "cnn_search"


def build_experiment(scheduler: str, budget: str, overrides: dict):
    """``cnn_search`` as in its file with ``[scheduler] type`` and the budget overrides applied (checked)."""
    base = load_experiment(EXPERIMENT)
    raw = copy.deepcopy(base.raw)
    raw.setdefault("scheduler", {})["type"] = scheduler
    raw["budgets"][budget].update({k: v for k, v in overrides.items() if v is not None})
    return parse_experiment(EXPERIMENT, raw, source=f"{base.source} (in memory: scheduler={scheduler}, "
                                                      f"budget {budget} overrides {overrides})")


class SimulatedCluster:
    """A head node (0 CPUs) and ``workers`` worker nodes (1 CPU each) on 127.0.0.1; this process connected."""

    def __init__(self, workers: int):
        self.n_workers = workers
        self.cluster = None
        self.tmp = None
        self._saved = None

    def __enter__(self):
        import ray
        import ray._private.ray_constants as ray_constants
        from ray._raylet import AuthenticationTokenLoader, Config
        from ray.cluster_utils import Cluster

        if ray.is_initialized():
            raise RuntimeError("Ray is already initialised in this process")
        self.tmp = tempfile.mkdtemp(prefix="spk-ray-")  # short: Ray's socket paths must stay under 108 characters
        env = {
            # Ray turns 127.0.0.1 in a cluster address into the machine's outward IP unless told that this is a
            # one-machine cluster (the switch Ray uses on Windows and macOS): then everything stays on loopback.
            ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR: "0",
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_AUTH_TOKEN_PATH": None,
            "RAY_ADDRESS": None, "RAY_TMPDIR": self.tmp,
            # trial workers at normal priority (Ray's default niceness 15 starves them behind any busy process)
            "RAY_worker_niceness": "0",
        }
        self._saved = ({k: os.environ.get(k) for k in env}, ray_constants.ENABLE_RAY_CLUSTER)
        _set_env(env)
        ray_constants.ENABLE_RAY_CLUSTER = False  # this process (Ray is imported already)
        Config.initialize("")  # re-read the auth mode from the environment, as ray.init does when it sets it
        AuthenticationTokenLoader.instance().reset_cache()
        try:
            node = {"node_ip_address": "127.0.0.1", "object_store_memory": 100 * 2**20}
            t0 = time.perf_counter()
            self.cluster = Cluster(shutdown_at_exit=True)
            self.cluster.add_node(**node, num_cpus=0, include_dashboard=False)  # the head
            self.worker_ids = [self.cluster.add_node(**node, num_cpus=1).node_id for _ in range(self.n_workers)]
            self.cluster.wait_for_nodes()
            ray.init(address=self.cluster.address, log_to_driver=False)
            self.start_seconds = time.perf_counter() - t0
            assert ray.cluster_resources().get("CPU") == self.n_workers, ray.cluster_resources()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc):
        import ray
        import ray._private.ray_constants as ray_constants
        from ray._raylet import AuthenticationTokenLoader, Config

        ray.shutdown()
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None
        if self._saved is not None:
            env, flag = self._saved
            _set_env(env)
            ray_constants.ENABLE_RAY_CLUSTER = flag
            Config.initialize("")
            AuthenticationTokenLoader.instance().reset_cache()
            self._saved = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False


def _set_env(env: dict) -> None:
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _trial_rows(exp_dir: Path) -> dict[str, list[dict]]:
    out = {}
    for d in sorted(exp_dir.glob("trial_*")):
        f = d / "result.json"
        if f.is_file():
            out[d.name] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


def run_one(workers: int, args, overrides: dict, storage: Path) -> dict:
    exp = build_experiment(args.scheduler, args.budget, overrides)
    b = exp.budget(args.budget)

    print(f"\n=== {workers} worker node(s): {EXPERIMENT} {args.budget}, scheduler {args.scheduler}, "
          f"{b.trials} trials x {b.epochs} epochs, max_train_rows={b.max_train_rows}, batch_size={b.batch_size}, "
          f"max_concurrent={b.max_concurrent}, seed={args.seed}", flush=True)
    fit_seconds = []
    build_tuner = runner.build_tuner

    def timed_build_tuner(*a, **kw):
        tuner = build_tuner(*a, **kw)
        fit = tuner.fit

        def timed_fit():
            t = time.perf_counter()
            try:
                return fit()
            finally:
                fit_seconds.append(time.perf_counter() - t)

        tuner.fit = timed_fit
        return tuner

    with SimulatedCluster(workers) as sim:
        t0 = time.perf_counter()
        with mock.patch.object(runner, "build_tuner", timed_build_tuner):
            out = runner.run_experiment(exp, shards=args.shards, budget=args.budget, storage=str(storage),
                                        seed=args.seed, cpus_per_trial=1, verbose=args.verbose)
        wall = time.perf_counter() - t0
        worker_ids, start_s = sim.worker_ids, sim.start_seconds
    trials = out["trials"]
    rows = _trial_rows(storage / EXPERIMENT)
    train_s = sum(float(r[-1]["train_seconds"]) for r in rows.values() if r)
    (fit_s,) = fit_seconds
    per_node = Counter(t["node_id"] for t in trials)
    return {
        "workers": workers, "cluster_start_s": start_s, "wall_s": wall, "fit_s": fit_s,
        "trials": len(trials), "errors": sum(t["error"] is not None for t in trials),
        "epochs": sum(int(t["epochs"]) for t in trials), "max_epochs": b.trials * b.epochs,
        "train_s": train_s,
        "trials_per_min": 60 * len(trials) / wall,
        "overhead_wall": (workers * wall - train_s) / len(trials),
        "overhead_fit": (workers * fit_s - train_s) / len(trials),
        "per_node": [per_node.get(w, 0) for w in worker_ids],
        "on_workers": set(per_node) <= set(worker_ids),
        "moved": sum(len(t["node_ids"]) > 1 for t in trials),
        "best_val": float(out["best"]["val_balanced_accuracy"]),
        "budget": b.as_dict(), "train_rows": int(out["results"]["search"]["train_rows"]),
    }


def markdown(rows: list[dict]) -> str:
    lines = ["| worker nodes (1 CPU each) | wall s | trials | epochs | trials per minute | training s (sum) "
             "| Tuner.fit s | overhead per trial, s (wall / Tuner.fit) | trials per worker node "
             "| best val. bal. acc. | cluster start s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['workers']} | {r['wall_s']:.1f} | {r['trials']} | {r['epochs']} of {r['max_epochs']} "
                     f"| {r['trials_per_min']:.1f} | {r['train_s']:.1f} | {r['fit_s']:.1f} "
                     f"| {r['overhead_wall']:.2f} / {r['overhead_fit']:.2f} "
                     f"| {' + '.join(map(str, r['per_node']))} | {100 * r['best_val']:.2f}% "
                     f"| {r['cluster_start_s']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", default=str(ROOT / DEFAULT_SHARDS), help="Parquet shards (spiking ingest)")
    p.add_argument("--budget", choices=BUDGETS, default="smoke", help="budget of the file to start from (default smoke)")
    p.add_argument("--nodes", default="1,2", help="worker node counts to run, in order (default 1,2)")
    p.add_argument("--scheduler", choices=("fifo", "asha"), default="fifo",
                   help="fifo (default: every trial trains all its epochs) or asha (the file's)")
    p.add_argument("--trials", type=int, default=None, help="override the budget's trials")
    p.add_argument("--epochs", type=int, default=None, help="override the budget's epochs")
    p.add_argument("--max-train-rows", type=int, default=None, help="override the budget's train-row subset")
    p.add_argument("--batch-size", type=int, default=None, help="override the budget's batch size")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--storage", default=None, help="parent folder for the storages (default: a new temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the storage folder (default: delete it at the end)")
    p.add_argument("--verbose", type=int, default=0, help="Ray Tune verbosity (default 0)")
    args = p.parse_args(argv)

    try:
        nodes = [int(n) for n in args.nodes.split(",") if n.strip()]
    except ValueError:
        p.error("--nodes takes comma-separated worker counts, e.g. 1,2")
    if not nodes or min(nodes) < 1:
        p.error("--nodes: at least one worker node per run")
    if not Path(args.shards).exists() and "://" not in args.shards:
        p.error(f"shards {args.shards} not found; create them with `spiking ingest` (see benchmarks/README.md)")
    overrides = {"trials": args.trials, "epochs": args.epochs, "max_train_rows": args.max_train_rows,
                 "batch_size": args.batch_size}

    # Pay imports and a first read of the shards before the timed runs, so the order does not favour one.
    import ray  # noqa: F401
    import sklearn  # noqa: F401
    import torch  # noqa: F401

    from spiking.data.ingest import load_dataset

    load_dataset(args.shards)
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    parent = Path(args.storage) if args.storage else Path(tempfile.mkdtemp(prefix="tune-nodes-"))
    parent.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in nodes:
            storage = parent / f"workers-{n}"
            if storage.exists():
                shutil.rmtree(storage)
            rows.append(run_one(n, args, overrides, storage))
    finally:
        if not args.keep:
            shutil.rmtree(parent, ignore_errors=True)
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    b = rows[0]["budget"]
    command = " ".join([".venv/bin/python", "benchmarks/tune_nodes.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"\n{EXPERIMENT}, budget {args.budget} with overrides "
          f"{({k: v for k, v in overrides.items() if v is not None})}, scheduler {args.scheduler}: "
          f"{b['trials']} trials x {b['epochs']} epochs, max_train_rows={b['max_train_rows']} (train rows used "
          f"{rows[0]['train_rows']}), batch_size={b['batch_size']}, max_concurrent={b['max_concurrent']}, "
          f"seed={args.seed}; head node 0 CPUs + N worker nodes x 1 CPU on 127.0.0.1; shards {args.shards}; "
          f"{platform.machine()}, {os.cpu_count()} cores; storage {parent}{'' if args.keep else ' (deleted)'}")
    print(f"uptime before: {uptime_before}\nuptime after:  {uptime_after}\ncommand: {command}\n")
    print(markdown(rows))
    bad = [r for r in rows if r["errors"] or not r["on_workers"] or r["moved"]]
    for r in bad:
        print(f"\n{r['workers']} worker node(s): {r['errors']} errors, trials off the worker nodes: "
              f"{not r['on_workers']}, trials that moved node: {r['moved']}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
