"""The ``spiking`` command line: ``ingest``, ``train``, ``evaluate`` and ``run`` (all three in a row)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_DATA_DIR = "../shared/data/tcga-mirna"
DEFAULT_SHARDS = "data/shards/tcga-mirna-rpm"
PRESETS = {"shared-tcga": "SHARED_TCGA", "gdc": "GDC_LABEL_SHEET", "none": None}


# --------------------------------------------------------------------------- arguments
def _add_ingest_args(p: argparse.ArgumentParser, required: bool) -> None:
    g = p.add_argument_group("ingest")
    g.add_argument("--matrix", required=required, help="expression matrix, CSV/TSV, optionally .gz")
    g.add_argument("--labels", required=required, help="labels table (CSV/TSV) with one row per sample id")
    g.add_argument("--layout", choices=sorted(PRESETS), default="shared-tcga",
                   help="column defaults: shared-tcga (row_id, cohort, patient, keep sample_type==01), "
                        "gdc (GDC label sheet: file_id, cases_0_project_project_id, case_id, drop TARGET-*), "
                        "none (give the columns yourself)")
    g.add_argument("--id-column", help="sample id column of the labels table")
    g.add_argument("--matrix-id-column", help="sample id column of the matrix (default: its first column)")
    g.add_argument("--label-column", help="class label column")
    g.add_argument("--group-column", help="column grouping samples that must stay in one split part (e.g. patient)")
    g.add_argument("--filter", action="append", dest="filters", metavar="EXPR",
                   help="row filter on the labels: COL==V, COL!=V, COL=~REGEX, COL!~REGEX (repeatable; "
                        "replaces the layout's filters)")
    g.add_argument("--features-in-rows", action="store_true", help="the matrix has features as rows, samples as columns")
    g.add_argument("--missing", default="drop-cohorts", choices=["drop-cohorts", "drop-features", "error"],
                   help="missing-value policy (default drop-cohorts: drop classes whose panel lacks features, "
                        "then features still missing)")
    g.add_argument("--shard-rows", type=int, default=1000, help="rows per Parquet shard")
    g.add_argument("--units", help="units of the matrix values (recorded in the manifest; default RPM)")


def _ingest_kwargs(a) -> dict:
    from .. import ingest as ing

    kw = dict(getattr(ing, PRESETS[a.layout])) if PRESETS[a.layout] else {}
    for name in ("id_column", "matrix_id_column", "label_column", "group_column", "units"):
        if getattr(a, name):
            kw[name] = getattr(a, name)
    if a.filters is not None:
        kw["filters"] = tuple(a.filters)
    for name in ("id_column", "label_column"):
        if name not in kw:
            raise SystemExit(f"spiking: --layout none needs --{name.replace('_', '-')}")
    kw.update(features_in_rows=a.features_in_rows, missing=a.missing, shard_rows=a.shard_rows)
    return kw


def _add_model_args(p: argparse.ArgumentParser) -> None:
    from ..config import RunConfig

    d = RunConfig()
    g = p.add_argument_group("data preparation")
    g.add_argument("--top-k", type=int, default=d.data.top_k, help="keep the k most frequent classes (0 = all)")
    g.add_argument("--seed", type=int, default=d.data.seed, help="seed of the split and of training")
    g.add_argument("--no-log2", action="store_true", help="do not apply log2(x+1) (for data already on a log scale)")
    g.add_argument("--zscore", choices=["feature", "sample", "none"], default=d.data.zscore,
                   help="z-score per feature (fitted on train) or per sample, before min-max to [0,1]")
    g = p.add_argument_group("CNN")
    g.add_argument("--preset", choices=["cnn_pt1", "cnn_pt2"], default=d.cnn.preset, help="CNN_PT preset")
    g.add_argument("--arch-seed", type=int, default=d.cnn.arch_seed, help="seed of the dependent layer sizes")
    g.add_argument("--cnn-epochs", type=int, default=d.cnn.train.epochs)
    g.add_argument("--cnn-lr", type=float, default=d.cnn.train.lr)
    g = p.add_argument_group("SNN")
    g.add_argument("--snn-mode", choices=["transfer", "scratch"], default=d.snn.mode,
                   help="transfer: CNN weights + cross-entropy count loss; scratch: MSE count loss")
    g.add_argument("--neuron", choices=["leaky", "lapicque", "rleaky", "synaptic"], default=d.snn.neuron)
    g.add_argument("--beta", type=float, default=d.snn.beta, help="membrane decay per step")
    g.add_argument("--num-steps", type=int, default=d.snn.num_steps, help="time steps per sample")
    g.add_argument("--no-normalize", action="store_true",
                   help="skip the data-based weight normalisation after weight transfer")
    g.add_argument("--population", type=int, default=d.snn.population, help="output neurons per class (scratch mode)")
    g.add_argument("--snn-epochs", type=int, default=d.snn.train.epochs)
    g.add_argument("--snn-lr", type=float, default=d.snn.train.lr)
    g = p.add_argument_group("training")
    g.add_argument("--batch-size", type=int, default=d.cnn.train.batch_size)
    g.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs (0 = off)")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def _run_config(a, shards: str):
    from ..config import RunConfig

    cfg = RunConfig()
    cfg.data.shards, cfg.data.top_k, cfg.data.seed = str(shards), a.top_k, a.seed
    cfg.data.log2, cfg.data.zscore = not a.no_log2, a.zscore
    cfg.cnn.preset, cfg.cnn.arch_seed = a.preset, a.arch_seed
    s = cfg.snn
    s.mode, s.neuron, s.beta, s.num_steps, s.population = a.snn_mode, a.neuron, a.beta, a.num_steps, a.population
    s.normalize = not a.no_normalize
    for t, epochs, lr in ((cfg.cnn.train, a.cnn_epochs, a.cnn_lr), (s.train, a.snn_epochs, a.snn_lr)):
        t.epochs, t.lr, t.batch_size, t.seed, t.device = epochs, lr, a.batch_size, a.seed, a.device
        t.progress = not a.no_progress
        if a.patience is not None:
            t.patience = a.patience
    return cfg


# --------------------------------------------------------------------------- steps
def _load_shards(path):
    from ..ingest import load_dataset

    return load_dataset(path)


def _dataset_info(ds, prep) -> dict:
    m = ds.manifest
    return {"source": [s.get("path") for s in m.get("sources", [])] if isinstance(m.get("sources"), list) else m.get("sources"),
            "shards": str(m.get("_path", "")) or None, "units": m.get("units"),
            "n_samples": int(sum(len(v) for v in prep.ids.values())), "n_features": prep.n_features,
            "classes": prep.class_names}


def cmd_ingest(a) -> int:
    from ..ingest import ingest

    manifest = ingest(a.matrix, a.labels, a.out, overwrite=a.overwrite, **_ingest_kwargs(a))
    print(f"wrote {manifest['n_samples']} samples x {manifest['n_features']} features "
          f"in {len(manifest['shards'])} shard(s) to {a.out}")
    return 0


def _train(cfg, run_dir: Path, which: str) -> None:
    from ..preprocess.prepare import load_prepared, prepare, save_prepared
    from ..training.jobs import load_model, train_cnn, train_snn

    ds = _load_shards(cfg.data.shards)
    if (run_dir / "split.json").exists():
        prep = load_prepared(ds, run_dir)
    else:
        prep = prepare(ds, top_k=cfg.data.top_k, fractions=cfg.data.fractions, seed=cfg.data.seed,
                       log2=cfg.data.log2, zscore=cfg.data.zscore)
        save_prepared(prep, run_dir)
    sizes = prep.split_info["sizes"]
    print(f"{len(prep.class_names)} classes, {prep.n_features} features; split {sizes} (seed {cfg.data.seed})")
    cnn = None
    if which in ("cnn", "both"):
        cnn, h = train_cnn(prep, cfg, run_dir)
        print(f"CNN: best validation balanced accuracy {h.best_val_balanced_accuracy:.4f} at epoch {h.best_epoch + 1}, "
              f"{h.train_seconds:.1f} s")
    if which in ("snn", "both"):
        if cfg.snn.mode == "transfer" and cnn is None:
            if not (run_dir / "cnn.pt").exists():
                raise SystemExit(f"spiking: SNN weight transfer needs {run_dir / 'cnn.pt'}; run `spiking train --model cnn` first")
            cnn, _ = load_model(run_dir / "cnn.pt")
        _, h = train_snn(prep, cfg, run_dir, cnn=cnn)
        print(f"SNN: best validation balanced accuracy {h.best_val_balanced_accuracy:.4f} at epoch {h.best_epoch + 1}, "
              f"{h.train_seconds:.1f} s")


def _evaluate(run_dir: Path) -> dict:
    from ..config import RunConfig
    from ..evaluation.evaluate import evaluate_run
    from ..evaluation.results import format_table, write_results
    from ..preprocess.prepare import load_prepared

    cfg = RunConfig.load(run_dir / "config.json")
    ds = _load_shards(cfg.data.shards)
    prep = load_prepared(ds, run_dir)
    results = evaluate_run(run_dir, prep, _dataset_info(ds, prep), seed=cfg.data.seed)
    results["run"] = {"name": run_dir.name, "config": cfg.to_dict()}
    write_results(results, run_dir / "results.json")
    print(f"\nTest split ({prep.split_info['sizes']['test']} samples, touched once):")
    print(format_table(results["models"]))
    print(f"\nresults: {run_dir / 'results.json'}")
    return results


def _run_dir(a) -> Path:
    d = Path(a.runs_dir) / a.run_name
    d.mkdir(parents=True, exist_ok=True)
    return d


def cmd_train(a) -> int:
    run_dir = _run_dir(a)
    cfg = _run_config(a, a.shards)
    cfg.save(run_dir / "config.json")
    _train(cfg, run_dir, a.model)
    return 0


def cmd_evaluate(a) -> int:
    run_dir = Path(a.runs_dir) / a.run_name
    if not (run_dir / "config.json").exists():
        raise SystemExit(f"spiking: no trained run at {run_dir} (config.json missing)")
    _evaluate(run_dir)
    return 0


def cmd_run(a) -> int:
    from ..ingest import ingest

    t0 = time.perf_counter()
    shards = Path(a.shards)
    if not (shards / "manifest.json").exists():
        data_dir = Path(a.data_dir)
        a.matrix = a.matrix or str(data_dir / "tcga_mirnaseq_rpm.csv.gz")
        a.labels = a.labels or str(data_dir / "tcga_mirnaseq_labels.csv")
        for f in (a.matrix, a.labels):
            if not Path(f).exists():
                raise SystemExit(f"spiking: input file not found: {f} (set --data-dir, or --matrix and --labels)")
        print(f"ingesting {a.matrix} + {a.labels} -> {shards}")
        m = ingest(a.matrix, a.labels, shards, **_ingest_kwargs(a))
        print(f"  {m['n_samples']} samples x {m['n_features']} features")
    else:
        print(f"using existing shards {shards}")
    run_dir = _run_dir(a)
    cfg = _run_config(a, str(shards))
    cfg.save(run_dir / "config.json")
    for stale in ("split.json", "cnn.pt", "snn.pt"):
        (run_dir / stale).unlink(missing_ok=True)
    _train(cfg, run_dir, "both")
    _evaluate(run_dir)
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spiking", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("ingest", help="matrix + labels -> Parquet shards and manifest.json",
                       description="Join an expression matrix to its labels by sample id, apply filters and the "
                                   "missing-value policy, and write Parquet shards with a manifest.")
    _add_ingest_args(q, required=True)
    q.add_argument("--out", required=True, help="output folder of the shards (must not exist unless --overwrite)")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_ingest)

    for name, func, helptext in (("train", cmd_train, "train the CNN and/or the SNN of a run"),
                                 ("run", cmd_run, "ingest (if needed), train CNN and SNN, evaluate on test")):
        q = sub.add_parser(name, help=helptext, description=helptext)
        q.add_argument("--run-name", default="default", help="runs/<run-name>/ holds the run's files")
        q.add_argument("--runs-dir", default="runs")
        q.add_argument("--shards", default=DEFAULT_SHARDS, help="Parquet shards folder")
        if name == "train":
            q.add_argument("--model", choices=["cnn", "snn", "both"], default="both")
        else:
            q.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                           help="folder with tcga_mirnaseq_rpm.csv.gz and tcga_mirnaseq_labels.csv")
            _add_ingest_args(q, required=False)
        _add_model_args(q)
        q.set_defaults(func=func)

    q = sub.add_parser("evaluate", help="test-split metrics of a trained run, with the logistic-regression baseline")
    q.add_argument("--run-name", default="default")
    q.add_argument("--runs-dir", default="runs")
    q.set_defaults(func=cmd_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spiking`` console script; returns the exit code."""
    from ..ingest.errors import IngestError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (IngestError, ValueError, FileNotFoundError) as e:
        print(f"spiking: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
