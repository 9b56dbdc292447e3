"""``spiking tune EXPERIMENT``: the command-line face of :func:`spiking.search.run_experiment`.

Register it in ``spiking/cli/main.py``'s ``build_parser``::

    from spiking.search.cli import add_tune_parser
    add_tune_parser(sub)          # sets func=cmd_tune

Errors raised before any trial (unknown experiment, storage not writable, missing
weight source, invalid space) are ``SpikingError`` subclasses, which ``main`` prints
as ``spiking: error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse

from spiking.specs.names import DEFAULT_SHARDS, MAX_SEED


def _seed_arg(text: str) -> int:
    """A seed in [0, MAX_SEED] (argparse type)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the seed must be an integer, got {text!r}") from None
    if not 0 <= v <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"the seed must be in [0, {MAX_SEED}], got {v}")
    return v


def add_tune_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``tune`` sub-command to an ``argparse`` sub-parsers object; returns the new parser."""
    from spiking.artifacts.storage import DEFAULT_STORAGE
    from spiking.search.registry import BUDGETS, list_experiments

    names = list_experiments()
    p = subparsers.add_parser(
        "tune", help="run a registered hyperparameter/architecture search with Ray Tune",
        description="Run a registered search experiment with Ray Tune (Optuna TPE + ASHA), checkpoint every epoch "
                    "of every trial in the storage, then export the best (and for SNNs the trade-off) configuration "
                    "and score it once on the test split. layout_ablation instead runs a grid of spatial layouts x "
                    "seeds (CNN and its LIF version per trial) and scores every network once on the test split. "
                    "Experiments: " + ", ".join(names))
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
    p.add_argument("--seed", type=_seed_arg, default=42, help="seed of the search, the architectures and training")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the embedded Ray (when RAY_ADDRESS is unset)")
    p.add_argument("--quiet", action="store_true", help="no Ray Tune progress tables")
    p.set_defaults(func=cmd_tune)
    return p


def cmd_tune(a) -> int:
    """Handler of ``spiking tune``; returns the exit code. Experiments with ``environment = "nengo"``
    (``snn_k``) run through :func:`spiking.search.snn_k.run_snn_k`, the others through
    :func:`spiking.search.runner.run_experiment`; each refuses the other environment clearly."""
    from spiking.search.frameworks import require
    from spiking.search.registry import load_experiment

    exp = load_experiment(a.experiment)
    require(exp.environment, f"experiment {exp.name}")
    if exp.environment == "nengo":
        from spiking.search.snn_k import cmd_snn_k

        return cmd_snn_k(a, exp)
    if exp.kind == "layout_ablation":
        return cmd_ablation(a, exp)
    from spiking.search.runner import run_experiment

    out = run_experiment(exp, shards=a.shards, budget=a.budget, storage=a.storage, resume=a.resume,
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


def cmd_ablation(a, exp=None) -> int:
    """``spiking tune layout_ablation``: :func:`spiking.search.ablation.run_ablation`, then its table."""
    from spiking.search.tuner import SearchError

    if a.weights is not None:
        raise SearchError("the layout ablation trains its own CNN per layout and seed; it takes no --weights")
    if a.gpus_per_trial:
        raise SearchError("the layout ablation runs its trials on CPU (no --gpus-per-trial)")
    from spiking.search.ablation import run_ablation

    out = run_ablation(exp or a.experiment, shards=a.shards, budget=a.budget, storage=a.storage, resume=a.resume,
                       overwrite=a.overwrite, cpus_per_trial=a.cpus_per_trial, max_concurrent=a.max_concurrent,
                       ray_num_cpus=a.ray_cpus, verbose=0 if a.quiet else 1, seed=a.seed)
    ab = out["results"]["ablation"]
    print(f"\n{out['experiment']} ({out['budget']}): {ab['n_trials']} trials (layouts x seeds), {ab['n_errors']} errors")
    print(f"\nTest split ({out['results']['split']['sizes']['test']} samples, each network scored once; networks "
          f"and logistic regression trained on {ab['train_rows']} rows); balanced accuracy mean ± sd over the seeds:")
    print(out["markdown"])
    print(f"\nresults: {out['path']} (results.json, results.txt, table.md, trials.json, networks/, figures/); {out['seconds']:.1f} s")
    return 0


def add_nas_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``nas`` sub-command (grammar-based architecture search, :mod:`spiking.search.evolution`)."""
    from spiking.artifacts.storage import DEFAULT_STORAGE
    from spiking.search.evolution import BUDGETS, DEFAULT_NAME

    p = subparsers.add_parser(
        "nas", help="grammar-based architecture search (Fast-DENSER (1+lambda) ES) of a Keras CNN (CNN_K)",
        description="Evolve Keras CNNs from a Fast-DENSER-style grammar: (1+lambda) evolution strategy, fitness = "
                    "validation accuracy (optionally with the parameter count as a second objective), offspring "
                    "trained in parallel on Ray under a time budget each; every generation's rows, the best network "
                    "and the random state are saved so --resume continues an interrupted search. The best network "
                    "is scored once on the test split at the end. Runs in the Keras/NengoDL environment "
                    "(.venv-nengo, make nas).")
    p.add_argument("--budget", choices=sorted(BUDGETS), default="smoke",
                   help="preset of generations/offspring/time budget: "
                        + "; ".join(f"{k}: {v['generations']} x {v['offspring']}, {v['time_budget_s']:g} s"
                                    for k, v in BUDGETS.items()) + " (default smoke)")
    p.add_argument("--generations", type=int, default=None, help="generations incl. generation 0 (overrides budget)")
    p.add_argument("--lambda", dest="offspring", type=int, default=None, help="offspring per generation")
    p.add_argument("--time-budget", type=float, default=None, help="training seconds per individual")
    p.add_argument("--max-params", type=int, default=2_000_000, help="largest network allowed (default 2,000,000)")
    p.add_argument("--max-epochs", type=int, default=1000, help="epoch cap per individual (default 1000)")
    p.add_argument("--objectives", choices=["accuracy", "accuracy,parameters"], default="accuracy", metavar="OBJ",
                   help="fitness: 'accuracy' (validation accuracy, default) or 'accuracy,parameters' (also "
                        "returns the accuracy/size Pareto front)")
    p.add_argument("--grammar", default=None,
                   help="grammar file, or a shipped one: fast_denser_1d (default: the study's grammar adapted to "
                        "1-D) or fast_denser_1d_relu (ReLU activations only, for the NengoDL conversion)")
    p.add_argument("--max-train-rows", type=int, default=None, help="stratified train subset (default: the budget's)")
    p.add_argument("--require-relu", action="store_true",
                   help="only networks with a ReLU layer (something the NengoDL conversion can make spike)")
    p.add_argument("--seed", type=int, default=42, help="seed of the evolution, initialisation and training")
    p.add_argument("--cpus-per-individual", type=float, default=1.0, help="Ray CPUs per training task")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the embedded Ray (when RAY_ADDRESS is unset)")
    p.add_argument("--storage", default=None, help=f"local folder or s3://bucket/prefix (default {DEFAULT_STORAGE})")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"search folder name in the storage (default {DEFAULT_NAME})")
    p.add_argument("--shards", default=DEFAULT_SHARDS, help="Parquet shards folder or URI")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search")
    p.add_argument("--overwrite", action="store_true", help="delete an existing search folder and start over")
    p.set_defaults(func=cmd_nas)
    return p


def cmd_nas(a) -> int:
    """Handler of ``spiking nas``; returns the exit code."""
    from spiking.search.frameworks import require

    require("nengo", "spiking nas (Keras networks for the NengoDL conversion)")
    from spiking.search.evolution import BUDGETS, NASSettings, run_nas

    b = BUDGETS[a.budget]
    def given(value, default):  # 0 is a value (refused by the checks), not "use the budget's"
        return default if value is None else value

    s = NASSettings(generations=given(a.generations, b["generations"]), offspring=given(a.offspring, b["offspring"]),
                    time_budget_s=given(a.time_budget, b["time_budget_s"]), max_params=a.max_params,
                    max_epochs=a.max_epochs, objectives=tuple(a.objectives.split(",")), seed=a.seed,
                    cpus_per_individual=a.cpus_per_individual, require_relu=a.require_relu,
                    max_train_rows=given(a.max_train_rows, b["max_train_rows"]))
    out = run_nas(shards=a.shards, storage=a.storage, name=a.name, settings=s, grammar_path=a.grammar,
                  resume=a.resume, overwrite=a.overwrite, ray_num_cpus=a.ray_cpus, budget=a.budget)
    best = out["best"]
    print(f"\nbest individual {best['id']} (generation {best['generation']}): validation accuracy "
          f"{best['fitness']:.4f}, {best['parameters']:,} parameters, {best['epochs']} epochs")
    print(f"  {best['phenotype']}")
    if len(out["front"]) > 1:
        print("accuracy/size front: " + ", ".join(f"{r['id']} {r['fitness']:.3f}/{r['parameters']:,}"
                                                   for r in out["front"]))
    print(f"\nTest split ({out['results']['split']['sizes']['test']} samples, touched once):")
    print(out["table"])
    print(f"\nresults: {out['path']} (generations.csv, best_model.keras, results.json); {out['seconds']:.1f} s")
    return 0
