"""Ray Tune plumbing shared by the PyTorch experiments (:mod:`spiking.search.runner`) and the NengoDL
one (:mod:`spiking.search.snn_k`): starting Ray, building the Tuner (Optuna TPE behind a
``ConcurrencyLimiter``, ASHA or FIFO), and summarising its trials. Torch-free.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from spiking.artifacts import storage as st
from spiking.errors import SpikingError
from spiking.search.registry import METRIC, Budget, Experiment, clean_config, suggest_config

TRADEOFF_TOLERANCE = 0.01  # 1 percentage point of balanced accuracy


class SearchError(SpikingError):
    """A search that cannot start (or finish): a clear message, no traceback needed."""


#: What every experiment folder written by ``spiking tune`` holds (beside Ray Tune's own state).
EXPERIMENT_FILE = "experiment.json"


def has_experiment_state(fs, exp_dir: str) -> bool:
    """True when ``exp_dir`` already holds an experiment (``experiment.json`` or Ray Tune's state)."""
    if not st.exists(fs, exp_dir):
        return False
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(exp_dir, recursive=False))
    return any(i.base_name == EXPERIMENT_FILE or i.base_name.startswith(("experiment_state", "tuner.pkl"))
               for i in infos)


def saved_experiment(fs, exp_dir: str, budget: str, seed: int) -> dict:
    """``experiment.json`` of the experiment folder ``exp_dir`` that is to be resumed.

    Raises:
        SearchError: no Tune state there, no experiment.json (not started by ``spiking tune``), or
            it was started with another budget or seed.
    """
    import json

    from ray import tune

    exp_uri = st.to_uri(fs, exp_dir)
    if not tune.Tuner.can_restore(exp_dir, storage_filesystem=None if st.is_local(fs) else fs):
        raise SearchError(f"nothing to resume at {exp_uri} (no Tune experiment state there)")
    saved_path = st.join(fs, exp_dir, EXPERIMENT_FILE)
    if not st.is_file(fs, saved_path):
        raise SearchError(f"{exp_uri} was not started by spiking tune ({EXPERIMENT_FILE} missing); cannot resume it")
    saved = json.loads(st.read_text(fs, saved_path))
    if saved.get("budget", {}).get("name") != budget or saved.get("seed") != seed:
        raise SearchError(f"{exp_uri} was started with another budget or seed (budget "
                          f"{saved.get('budget', {}).get('name')!r}, seed {saved.get('seed')}; now {budget!r}, {seed}); "
                          "resume it with the same budget and seed")
    return saved


def trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def ray_init(ray_num_cpus: int | None, runtime_env: dict | None = None) -> bool:
    """Start Ray unless it runs already (the cluster at ``RAY_ADDRESS``, else an embedded one with
    ``ray_num_cpus`` CPUs), with ``runtime_env`` for its workers; True if this call started it."""
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
    else:
        # address="local": always a new embedded instance, never one started by `ray start` on this machine
        ray.init(address="local", num_cpus=ray_num_cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env=runtime_env)
    return True


def build_tuner(exp: Experiment, b: Budget, trainable, *, fs, root: str, seed: int, max_concurrent: int,
                resume: bool, verbose: int, max_failures: int):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter

    exp_path = st.join(fs, root, exp.name)
    custom_fs = None if st.is_local(fs) else fs
    if resume:
        return tune.Tuner.restore(exp_path, trainable=trainable, resume_errored=True, storage_filesystem=custom_fs)
    search_alg = None
    param_space = None
    if exp.search["algorithm"] == "optuna-tpe":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space = functools.partial(suggest_config, space=b.space, exclude=exp.exclude, fixed=exp.fixed, seed=seed,
                                  searched_arch=exp.arch == "search")
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=b.n_startup_trials)
        search_alg = ConcurrencyLimiter(OptunaSearch(space=space, metric=METRIC, mode="max", sampler=sampler), max_concurrent=max_concurrent)
    else:
        param_space = dict(exp.fixed)
    if exp.scheduler["type"] == "asha":
        scheduler = ASHAScheduler(time_attr="epoch", max_t=b.epochs, grace_period=b.grace_period,
                                  reduction_factor=b.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    tune_config = tune.TuneConfig(metric=METRIC, mode="max", search_alg=search_alg, scheduler=scheduler,
                                  num_samples=b.trials, max_concurrent_trials=None if search_alg else max_concurrent,
                                  reuse_actors=True,
                                  trial_dirname_creator=trial_dirname, trial_name_creator=trial_dirname)
    run_config = tune.RunConfig(
        name=exp.name, storage_path=root, storage_filesystem=custom_fs, verbose=verbose,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute=METRIC,
                                                checkpoint_score_order="max"),
        failure_config=tune.FailureConfig(max_failures=max_failures))
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)


def fit_trials(exp: Experiment, b: Budget, make_trainable, *, fs, root: str, seed: int, max_concurrent: int,
               resume: bool, verbose: int, max_failures: int, ray_num_cpus: int | None, build=None) -> list[dict]:
    """Run an experiment's trials and summarise them (:func:`summarize_trials`).

    Starts an embedded Ray (or joins ``RAY_ADDRESS``) unless Ray runs already, calls
    ``make_trainable()`` once Ray is up (so it may look at the cluster's resources), builds the
    Tuner with ``build`` (default :func:`build_tuner`), fits it, and shuts down a Ray it started."""
    started = ray_init(ray_num_cpus)
    try:
        tuner = (build or build_tuner)(exp, b, make_trainable(), fs=fs, root=root, seed=seed,
                                       max_concurrent=max_concurrent, resume=resume, verbose=verbose,
                                       max_failures=max_failures)
        grid = tuner.fit()
    finally:
        if started:
            import ray

            ray.shutdown()
    return summarize_trials(grid, b.epochs)


def _node_ids(df) -> list[str]:
    """Ray node ids that ran a trial's epochs, in order, each run of repeats once (more than one: it moved)."""
    if df is None or "node_id" not in df:
        return []
    ids = [v for v in df["node_id"].tolist() if isinstance(v, str) and v]
    return [v for i, v in enumerate(ids) if i == 0 or v != ids[i - 1]]


def summarize_trials(grid, max_epochs: int) -> list[dict]:
    """One record per trial: config, best validation balanced accuracy and its epoch, epochs run, status,
    and ``node_id`` (the Ray node of its last epoch) with ``node_ids`` (every node it ran on, in order)."""
    out = []
    for r in grid:
        rec = {"trial_id": (r.metrics or {}).get("trial_id") or os.path.basename(r.path).removeprefix("trial_"),
               "config": clean_config(r.config), "path": r.path, "error": str(r.error) if r.error else None}
        df = r.metrics_dataframe
        if df is not None and len(df) and METRIC in df:
            i = int(np.argmax(df[METRIC].to_numpy()))
            rec.update(best_val_balanced_accuracy=float(df[METRIC].iloc[i]), best_epoch=int(df["epoch"].iloc[i]),
                       epochs=int(df["epoch"].max()), last_val_balanced_accuracy=float(df[METRIC].iloc[-1]))
            arch = {k.split("/", 1)[1]: int(df[k].iloc[-1]) for k in df.columns if k.startswith("arch/")}
            rec["arch"] = arch or (r.metrics or {}).get("arch")
        else:
            rec.update(best_val_balanced_accuracy=None, best_epoch=None, epochs=0, last_val_balanced_accuracy=None)
        rec["node_ids"] = _node_ids(df)
        rec["node_id"] = rec["node_ids"][-1] if rec["node_ids"] else None
        rec["stopped_early"] = rec["error"] is None and rec["epochs"] < max_epochs
        rec["_result"] = r
        out.append(rec)
    return out


def pick_best(trials: list[dict]) -> dict:
    ok = [t for t in trials if t["best_val_balanced_accuracy"] is not None]
    if not ok:
        errors = [t["error"] for t in trials if t["error"]]
        raise SearchError("no trial reported a result" + (f"; first error:\n{errors[0]}" if errors else ""))
    return max(ok, key=lambda t: (t["best_val_balanced_accuracy"], -t["best_epoch"]))


def pick_tradeoff(trials: list[dict], best: dict, tolerance: float = TRADEOFF_TOLERANCE,
                  steps_key: str = "num_steps") -> dict:
    """Fewest time steps (``config[steps_key]``: ``num_steps`` for snnTorch, ``num_steps`` for NengoDL)
    whose best validation balanced accuracy is within ``tolerance`` of the best."""
    ok = [t for t in trials if t["best_val_balanced_accuracy"] is not None and steps_key in t["config"]]
    near = [t for t in ok if t["best_val_balanced_accuracy"] >= best["best_val_balanced_accuracy"] - tolerance - 1e-12]
    return min(near, key=lambda t: (int(t["config"][steps_key]), -t["best_val_balanced_accuracy"]))


def public_trial(trial: dict) -> dict:
    return {k: v for k, v in trial.items() if not k.startswith("_")}
