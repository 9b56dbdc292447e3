"""spiking: classify expression profiles with a CNN and its spiking conversions.

Commands: ingest (matrix + labels -> Parquet shards), train, evaluate, run (ingest, train,
evaluate and report in a row; --seeds / --cv repeat it and summarise), report (figures and tables of a run or experiment), tune
(Ray Tune experiments)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from spiking.errors import SpikingError
from spiking.specs.names import (
    CNN_ACTIVATIONS,
    DEFAULT_FOLDS,
    DEFAULT_SHARDS,
    DEVICES,
    ENCODINGS,
    NEURONS,
    PRESET_NAMES,
    SNN_MODES,
    ZSCORE_MODES,
)

DEFAULT_DATA_DIR = "../shared/data/tcga-mirna"
PRESETS = {"shared-tcga": "SHARED_TCGA", "gdc": "GDC_LABEL_SHEET", "none": None}


class CLIError(SpikingError):
    """A problem with the command's arguments or files: printed as one line, exit code 2."""


# --------------------------------------------------------------------------- arguments
def _add_ingest_args(p: argparse.ArgumentParser, required: bool) -> None:
    g = p.add_argument_group("ingest")
    g.add_argument("--matrix", required=required, help="expression matrix, CSV/TSV, optionally .gz")
    g.add_argument("--labels", required=required, help="labels table (CSV/TSV) with one row per sample id")
    g.add_argument("--format", choices=sorted(PRESETS), default="shared-tcga",
                   help="column defaults of the inputs: shared-tcga (row_id, cohort, patient, keep sample_type==01), "
                        "gdc (GDC label sheet: file_id, cases_0_project_project_id, case_id, drop TARGET-*), "
                        "none (give the columns yourself)")
    g.add_argument("--id-column", help="sample id column of the labels table")
    g.add_argument("--matrix-id-column", help="sample id column of the matrix (unset: its first column)")
    g.add_argument("--label-column", help="class label column")
    g.add_argument("--group-column", help="column grouping samples that must stay in one split part (e.g. patient)")
    g.add_argument("--filter", action="append", dest="filters", metavar="EXPR",
                   help="row filter on the labels: COL==V, COL!=V, COL=~REGEX, COL!~REGEX (repeatable; "
                        "replaces the format's filters)")
    g.add_argument("--features-in-rows", action="store_true", help="the matrix has features as rows, samples as columns")
    g.add_argument("--missing", default="drop-cohorts", choices=["drop-cohorts", "drop-features", "error"],
                   help="missing-value policy (drop-cohorts: drop classes whose panel lacks features, "
                        "then features still missing)")
    g.add_argument("--shard-rows", type=int, default=1000, help="rows per Parquet shard")
    g.add_argument("--units", help="units of the matrix values, recorded in the manifest (unset: the format's, RPM for shared-tcga and gdc)")


def _ingest_kwargs(a) -> dict:
    from spiking.data import ingest as ing

    kw = dict(getattr(ing, PRESETS[a.format])) if PRESETS[a.format] else {}
    for name in ("id_column", "matrix_id_column", "label_column", "group_column", "units"):
        if getattr(a, name):
            kw[name] = getattr(a, name)
    if a.filters is not None:
        kw["filters"] = tuple(a.filters)
    for name in ("id_column", "label_column"):
        if name not in kw:
            raise CLIError(f"--format none needs --{name.replace('_', '-')}")
    kw.update(features_in_rows=a.features_in_rows, missing=a.missing, shard_rows=a.shard_rows)
    return kw


def _add_model_args(p: argparse.ArgumentParser) -> None:
    from spiking.specs.run import RunConfig

    d = RunConfig()
    g = p.add_argument_group("data preparation")
    g.add_argument("--top-k", type=int, default=d.data.top_k, help="keep the k most frequent classes (0 = all)")
    g.add_argument("--seed", type=int, default=d.data.seed, help="seed of the split and of training")
    g.add_argument("--no-log2", action="store_true", help="do not apply log2(x+1) (for data already on a log scale)")
    g.add_argument("--zscore", choices=ZSCORE_MODES, default=d.data.zscore,
                   help="z-score per feature (fitted on train) or per sample, before min-max to [0,1]")
    from spiking.data.layout import LAYOUTS

    g = p.add_argument_group("spatial layout (fitted on the training part; saved with every network)")
    g.add_argument("--layout", choices=sorted(LAYOUTS), default=d.data.layout,
                   help="how the profile becomes an image: identity (file order, 1-D: the study's), square (file "
                        "order zero-padded to a square, 2-D: the study's padded option), random (a fixed "
                        "permutation, 1-D: the control), correlation_1d (hierarchical-clustering leaf order, 1-D), "
                        "embedding_2d (DeepInsight-style PCA embedding assigned to unique pixels, 2-D). 2-D layouts "
                        "train CNN2d and a direct-input SpikingCNN2d")
    g.add_argument("--image-shape", type=_image_shape_arg, default=None, metavar="HxW",
                   help="image size of embedding_2d, e.g. 40x40 (unset: the smallest square holding the features)")
    g.add_argument("--layout-seed", type=int, default=d.data.layout_seed,
                   help="seed of the random and embedding_2d layouts")
    g = p.add_argument_group("CNN")
    g.add_argument("--preset", choices=PRESET_NAMES, default=d.cnn.preset, help="CNN_PT preset")
    g.add_argument("--arch-seed", type=int, default=d.cnn.arch_seed, help="seed of the dependent layer sizes")
    g.add_argument("--cnn-epochs", type=int, default=d.cnn.train.epochs, help="maximum CNN epochs")
    g.add_argument("--cnn-lr", type=float, default=d.cnn.train.lr, help="CNN Adam learning rate")
    g.add_argument("--cnn-activation", choices=CNN_ACTIVATIONS, default=d.cnn.activation,
                   help="relu (the study's) or qcfs: quantisation-clip-floor-shift with learnt thresholds (Bu et al. "
                        "2022), the CNN that --snn-mode convert turns into a spiking network with no training (1-D only)")
    g.add_argument("--qcfs-percentile", type=float, default=d.cnn.qcfs_percentile,
                   help="each QCFS threshold starts at this percentile of its layer's positive input (training rows), "
                        "then is learnt")
    g.add_argument("--qcfs-levels", type=int, default=d.cnn.levels,
                   help="quantisation levels of --cnn-activation qcfs (the converted network needs about this many "
                        "time steps: pass the same --num-steps)")
    g = p.add_argument_group("SNN")
    g.add_argument("--snn-mode", choices=SNN_MODES, default=d.snn.mode,
                   help="transfer: CNN weights + cross-entropy count loss; scratch: MSE count loss; convert: a QCFS "
                        "CNN (--cnn-activation qcfs) into integrate-and-fire neurons with no training (Bu et al. 2022)")
    g.add_argument("--neuron", choices=NEURONS, default=d.snn.neuron,
                   help="snnTorch neuron model of every LIF layer")
    g.add_argument("--beta", type=float, default=d.snn.beta, help="membrane decay per step")
    g.add_argument("--num-steps", type=int, default=d.snn.num_steps, help="time steps per sample")
    g.add_argument("--finetune", action="store_true",
                   help="with --snn-mode convert: train the converted network for --snn-epochs with surrogate "
                        "gradients (hybrid conversion, Rathi et al. 2020), keeping the converted weights unless an "
                        "epoch beats them on validation")
    g.add_argument("--no-normalize", action="store_true",
                   help="skip the data-based weight normalisation after weight transfer")
    g.add_argument("--population", type=int, default=d.snn.population, help="output neurons per class (scratch mode)")
    g.add_argument("--encodings", type=_encodings_arg, default=None,
                   help="SNN input encodings, comma-separated (unset: all four for a 1-D layout, direct for a 2-D "
                        "one); one SNN is trained per encoding: direct (the "
                        "profile as current at every step), rate (Bernoulli spikes), latency (one spike per "
                        "feature, earlier when larger; none below 0.01), delta (ON/OFF events where the value changes along "
                        "the feature order)")
    g.add_argument("--delta-threshold", type=float, default=d.snn.delta_threshold,
                   help="delta coding: an ON/OFF event is sent where a feature differs from the previous feature "
                        "(in the layout order) by at least this much, on the [0,1] input scale")
    g.add_argument("--snn-epochs", type=int, default=d.snn.train.epochs, help="maximum SNN epochs")
    g.add_argument("--snn-lr", type=float, default=d.snn.train.lr, help="SNN Adam learning rate")
    g = p.add_argument_group("training")
    g.add_argument("--batch-size", type=int, default=d.cnn.train.batch_size, help="samples per training step")
    g.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs for both networks (0 = off; unset: 15 CNN, 5 SNN)")
    g.add_argument("--device", choices=DEVICES, default=d.cnn.train.device,
                   help="auto uses a CUDA GPU when torch sees one")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def _encodings_arg(text: str) -> tuple[str, ...]:
    encs = tuple(e.strip() for e in str(text).split(",") if e.strip())
    if not encs:
        raise argparse.ArgumentTypeError(f"no encoding given; choose one or more of {', '.join(ENCODINGS)}")
    bad = [e for e in encs if e not in ENCODINGS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown encoding(s) {bad}; choose from {', '.join(ENCODINGS)}")
    return encs


def _cv_arg(text: str):
    from spiking.cli.repeats import RepeatError, parse_cv

    try:
        return parse_cv(text)
    except RepeatError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _image_shape_arg(text: str) -> tuple[int, int]:
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"image shape must be HxW with two positive integers, e.g. 40x40; "
                                         f"got {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"image shape must be positive, got {text!r}")
    return h, w


def _run_config(a, shards: str):
    from spiking.specs.run import RunConfig

    cfg = RunConfig()
    cfg.data.shards, cfg.data.top_k, cfg.data.seed = str(shards), a.top_k, a.seed
    cfg.data.log2, cfg.data.zscore = not a.no_log2, a.zscore
    cfg.data.layout, cfg.data.layout_shape, cfg.data.layout_seed = a.layout, a.image_shape, a.layout_seed
    cfg.cnn.preset, cfg.cnn.arch_seed = a.preset, a.arch_seed
    cfg.cnn.activation, cfg.cnn.levels, cfg.cnn.qcfs_percentile = a.cnn_activation, a.qcfs_levels, a.qcfs_percentile
    s = cfg.snn
    s.mode, s.neuron, s.beta, s.num_steps, s.population = a.snn_mode, a.neuron, a.beta, a.num_steps, a.population
    s.normalize, s.finetune = not a.no_normalize, a.finetune
    if a.encodings is None:
        s.encodings = ("direct",) if cfg.data.is_2d else RunConfig().snn.encodings
    else:
        s.encodings = a.encodings if isinstance(a.encodings, tuple) else _encodings_arg(a.encodings)
    s.delta_threshold = a.delta_threshold
    for t, epochs, lr in ((cfg.cnn.train, a.cnn_epochs, a.cnn_lr), (s.train, a.snn_epochs, a.snn_lr)):
        t.epochs, t.lr, t.batch_size, t.seed, t.device = epochs, lr, a.batch_size, a.seed, a.device
        t.progress = not a.no_progress
        if a.patience is not None:
            t.patience = a.patience
    cfg.validate()
    from spiking.training.reproducibility import resolve_device

    resolve_device(a.device)  # fails now, not after the CNN has trained
    return cfg


# --------------------------------------------------------------------------- steps
def _load_shards(path):
    from spiking.data.ingest import load_dataset

    return load_dataset(path)


def cmd_ingest(a) -> int:
    from spiking.data.ingest import ingest

    manifest = ingest(a.matrix, a.labels, a.out, overwrite=a.overwrite, **_ingest_kwargs(a))
    j = manifest.get("join", {})
    print(f"wrote {manifest['n_samples']} samples x {manifest['n_features']} features, {manifest['n_classes']} classes "
          f"in {len(manifest['shards'])} shard(s) to {a.out}\n"
          f"  {j.get('only_in_matrix', {}).get('count', 0)} matrix ids without a label, "
          f"{j.get('removed_by_filters', {}).get('count', 0)} removed by filters, "
          f"{j.get('only_in_labels', {}).get('count', 0)} label ids without a profile; details in manifest.json")
    return 0


def _train(cfg, run_dir: Path, which: str) -> None:
    from spiking.artifacts.checkpoint import load_model, snn_name
    from spiking.data.preprocess.prepare import load_prepared, prepare, save_prepared
    from spiking.training.jobs import train_cnn, train_snn

    ds = _load_shards(cfg.data.shards)
    if (run_dir / "split.json").exists():
        prep = load_prepared(ds, run_dir)
        saved = prep.layout_state()
        if saved["name"] != cfg.data.layout:
            raise CLIError(f"run {run_dir} lays its features out with {saved['name']} (its layout.json), not "
                           f"{cfg.data.layout}; pass --layout {saved['name']} or train the CNN again (--model both)")
    else:
        prep = prepare(ds, top_k=cfg.data.top_k, log2=cfg.data.log2, zscore=cfg.data.zscore,
                       **cfg.data.split_kwargs(), **cfg.data.layout_kwargs())
        save_prepared(prep, run_dir)
    sizes = prep.split_info["sizes"]
    shape = "x".join(map(str, prep.input_shape))
    print(f"{len(prep.class_names)} classes, {prep.n_features} features; split {sizes} (seed {cfg.data.seed}); "
          f"layout {cfg.data.layout} ({shape})")
    cnn = None
    if which in ("cnn", "both"):
        cnn, h = train_cnn(prep, cfg, run_dir)
        print(f"CNN: best validation balanced accuracy {h.best_val_balanced_accuracy:.4f} at epoch {h.best_epoch + 1}, "
              f"{h.train_seconds:.1f} s")
    if which in ("snn", "both"):
        if cfg.snn.mode in ("transfer", "convert") and cnn is None:
            if not (run_dir / "cnn.pt").exists():
                raise CLIError(f"SNN weight {cfg.snn.mode} needs {run_dir / 'cnn.pt'}; run `spiking train --model cnn` "
                               "first")
            cnn, _ = load_model(run_dir / "cnn.pt")
        for enc in cfg.snn.encodings:
            _, h = train_snn(prep, cfg, run_dir, cnn=cnn, encoding=enc)
            if cfg.snn.mode == "convert":
                converted = h.epochs[0]["val_balanced_accuracy"]
                print(f"SNN ({enc} input, {snn_name(enc)}.pt): converted from the QCFS CNN, {cfg.snn.num_steps} steps: "
                      f"validation balanced accuracy {converted:.4f}" + (
                          "" if len(h.epochs) == 1 else f"; fine-tuned {h.best_val_balanced_accuracy:.4f} at epoch "
                          f"{h.best_epoch + 1}, {h.train_seconds:.1f} s" if h.best_epoch >= 0 else
                          f"; fine-tuning did not beat it on validation ({h.train_seconds:.1f} s): kept"))
                continue
            print(f"SNN ({enc} input, {snn_name(enc)}.pt): best validation balanced accuracy "
                  f"{h.best_val_balanced_accuracy:.4f} at epoch {h.best_epoch + 1}, {h.train_seconds:.1f} s")


def _evaluate(run_dir: Path) -> dict:
    from spiking.artifacts.results import RunInfo, dataset_block, format_table, write_results
    from spiking.data.ingest import locate_shards
    from spiking.data.preprocess.prepare import load_prepared
    from spiking.evaluation.evaluate import evaluate_run
    from spiking.specs.run import RunConfig

    cfg = RunConfig.load(run_dir / "config.json")
    ds = _load_shards(locate_shards(cfg.data.shards, run_dir) or cfg.data.shards)
    prep = load_prepared(ds, run_dir)
    typed = evaluate_run(run_dir, prep, dataset_block(ds.manifest, prep, cfg.data.shards), seed=cfg.data.seed)
    from spiking.training.reproducibility import environment

    typed.run = RunInfo(name=run_dir.name, config=cfg.to_dict(), environment=environment())
    write_results(typed, run_dir / "results.json")
    results = typed.to_dict()
    print(f"\nTest split ({prep.split_info['sizes']['test']} samples, touched once):")
    print(format_table(results["models"]))
    for m in results["models"]:
        for w in m.get("warnings", []):
            print(f"warning: {m['name']}: {w}")
    print(f"\nresults: {run_dir / 'results.json'}")
    return results


def _run_dir(a, create: bool = True) -> Path:
    """``<runs-dir>/<run-name>``, created unless ``create`` is false; CLIError for a name that is not a
    plain folder name (empty, blank, ``.``/``..``, a path, control characters, over 200 characters)
    or a path through a file."""
    name = a.run_name
    if (not name or not name.strip() or name in (".", "..") or "/" in name or "\\" in name or len(name) > 200
            or any(ord(ch) < 32 for ch in name)):
        raise CLIError(f"--run-name must be a plain folder name (at most 200 characters, no control characters), "
                       f"got {name!r}")
    d = Path(a.runs_dir) / name
    try:
        for p in (d, *d.parents):
            if p.exists() and not p.is_dir():
                raise CLIError(f"--runs-dir/--run-name: {p} is a file, not a folder")
        if create:
            d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CLIError(f"cannot create the run folder {d}: {e.strerror or e}") from None
    return d


#: A run folder's files (removed when its CNN is trained afresh), those of a repeated run included
#: (``spiking run --seeds/--cv``: its repeats' folders and summary.json).
RUN_FILES = ("config.json", "split.json", "preprocessor.joblib", "layout.json", "cnn.pt", "results.json", "history_cnn.json",
             "snn*.pt", "history_snn*.json", "report", "summary.json", "seed_*", "fold_*")


def _start_run(a, cfg, which: str, run_dir: Path | None = None) -> Path:
    """Prepare the run folder. Training the CNN starts the run afresh (new split and scaling
    from the current settings; every earlier file removed). Training only the SNNs keeps the
    run's split and CNN, so it needs the run's data settings, CNN preset and arch seed; the
    run's results.json and report (now stale) are removed. ``config.json`` is written by the
    caller once training has succeeded (:func:`_save_config`)."""

    run_dir = _run_dir(a) if run_dir is None else run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = run_dir / "config.json"
    if which == "snn" and cfg_path.exists():
        from spiking.specs.run import RunConfig

        old_cfg = RunConfig.load(cfg_path).to_dict()
        new_cfg = cfg.to_dict()
        diff = {k: (old_cfg["data"].get(k), v) for k, v in new_cfg["data"].items() if old_cfg["data"].get(k) != v}
        if diff:
            raise CLIError(f"run {run_dir} was made with other data settings {diff} (old, new); "
                           "train the CNN again (--model both) or use another --run-name")
        for key, flag in (("preset", "--preset"), ("arch_seed", "--arch-seed")):
            if old_cfg["cnn"].get(key) != new_cfg["cnn"][key]:
                raise CLIError(f"the CNN of run {run_dir} was made with {flag} {old_cfg['cnn'].get(key)}; the SNNs "
                               f"take its architecture, so pass {flag} {old_cfg['cnn'].get(key)} (or retrain the CNN "
                               "with --model both)")
        from spiking.cli.repeats import remove_matching

        remove_matching(run_dir, ("results.json", "report"))
    elif which != "snn":
        from spiking.cli.repeats import remove_matching

        remove_matching(run_dir, RUN_FILES)
    return run_dir


def _save_config(cfg, run_dir: Path) -> None:
    """Write config.json after training: the settings of the last training command, with
    ``snn.encodings`` listing every spiking network now in the run (each network's own
    settings are saved in its .pt file and shown per model in results.json)."""
    from spiking.artifacts.checkpoint import snn_name
    from spiking.models.encoding import ENCODINGS

    cfg.snn.encodings = tuple(e for e in ENCODINGS if (run_dir / f"{snn_name(e)}.pt").exists()) or cfg.snn.encodings
    cfg.save(run_dir / "config.json")


def _check_image_fits(cfg, shards) -> None:
    """Refuse an ``--image-shape`` with fewer pixels than the shards have features, before any run file is written."""
    manifest = Path(shards) / "manifest.json"
    if cfg.data.layout_shape is None or not manifest.exists():
        return
    try:
        n = int(json.loads(manifest.read_text()).get("n_features") or 0)
    except (ValueError, TypeError, AttributeError):  # a damaged manifest: loading the shards names the problem
        return
    h, w = cfg.data.layout_shape
    if h * w < n:
        raise CLIError(f"--image-shape {h}x{w} has {h * w} pixels, fewer than the {n} features of {shards}; "
                       f"use at least {math.isqrt(n - 1) + 1}x{math.isqrt(n - 1) + 1}")


def cmd_train(a) -> int:
    cfg = _run_config(a, a.shards)
    if not (Path(a.shards) / "manifest.json").exists() and "://" not in a.shards:
        raise CLIError(f"no shards at {a.shards} (manifest.json missing); run `spiking ingest` first")
    _check_image_fits(cfg, a.shards)
    if a.model == "snn" and cfg.snn.mode in ("transfer", "convert"):
        cnn_path = Path(a.runs_dir) / a.run_name / "cnn.pt"
        if not cnn_path.exists():
            raise CLIError(f"SNN weight {cfg.snn.mode} needs {cnn_path}; run `spiking train --model cnn` first")
    run_dir = _start_run(a, cfg, a.model)
    _train(cfg, run_dir, a.model)
    _save_config(cfg, run_dir)
    return 0


def cmd_evaluate(a) -> int:
    run_dir = Path(a.runs_dir) / a.run_name
    if not (run_dir / "config.json").exists():
        raise CLIError(f"no trained run at {run_dir} (config.json missing)")
    _evaluate(run_dir)
    return 0


def _sha256(path: str | Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_mismatches(manifest: dict, matrix: str, labels: str, kw: dict) -> list[str]:
    """What differs between existing shards (their manifest) and the ingest a run asks for.

    Compares the source files by content (sha256), the id/label/group columns, the
    filters, the missing-value policy and the matrix orientation. Returns one line per
    difference; empty when the shards are what this ingest would write.
    """
    diffs = []
    for role, path in (("matrix", matrix), ("labels", labels)):
        src = (manifest.get("sources") or {}).get(role, {})
        if src.get("sha256") != _sha256(path):
            diffs.append(f"{role} file: shards made from {src.get('path')}, asked for {path} (content differs)")
    wanted = {"id_column": kw.get("id_column"), "label_column": kw.get("label_column"),
              "group_column": kw.get("group_column"), "matrix_id_column": kw.get("matrix_id_column"),
              "features_in_rows": kw.get("features_in_rows", False),
              "filters": [str(f) for f in kw.get("filters", ())]}
    have = {k: manifest.get(k) for k in wanted}
    have["filters"] = [f.get("expr") for f in manifest.get("filters", [])]
    policy = (manifest.get("missing") or {}).get("policy")
    if policy != kw.get("missing"):
        diffs.append(f"missing-value policy: shards {policy!r}, asked for {kw.get('missing')!r}")
    diffs += [f"{k}: shards {have[k]!r}, asked for {v!r}" for k, v in wanted.items() if have[k] != v]
    return diffs


def cmd_run(a) -> int:
    from spiking.data.ingest import ingest

    t0 = time.perf_counter()
    cfg = _run_config(a, str(a.shards))  # validate every setting before any work
    seeds = None
    if a.seeds is not None:
        from spiking.cli.repeats import parse_seeds

        seeds = parse_seeds(a.seeds)
    shards = Path(a.shards)
    data_dir = Path(a.data_dir)
    a.matrix = a.matrix or str(data_dir / "tcga_mirnaseq_rpm.csv.gz")
    a.labels = a.labels or str(data_dir / "tcga_mirnaseq_labels.csv")
    missing = [f for f in (a.matrix, a.labels) if not Path(f).is_file()]
    kw = _ingest_kwargs(a)
    if (shards / "manifest.json").exists() and missing:
        print(f"using existing shards {shards} (source files {missing} not found, so not compared)")
    elif missing:
        raise CLIError(f"input file not found: {missing[0]} (set --data-dir, or --matrix and --labels)")
    elif (shards / "manifest.json").exists():
        diffs = shard_mismatches(json.loads((shards / "manifest.json").read_text()), a.matrix, a.labels, kw)
        if diffs:
            raise CLIError(f"the shards at {shards} were made with other inputs or settings:\n  - "
                             + "\n  - ".join(diffs)
                             + f"\nPass another --shards folder (or delete {shards}) to ingest anew.")
        print(f"using existing shards {shards} (same sources and settings)")
    else:
        print(f"ingesting {a.matrix} + {a.labels} -> {shards}")
        m = ingest(a.matrix, a.labels, shards, **kw)
        j = m.get("join", {})
        print(f"  {m['n_samples']} samples x {m['n_features']} features, {m['n_classes']} classes "
              f"({j.get('only_in_matrix', {}).get('count', 0)} matrix ids without a label, "
              f"{j.get('removed_by_filters', {}).get('count', 0)} removed by filters; see {shards / 'manifest.json'})")
    _check_image_fits(cfg, shards)
    from spiking.report import build_report

    def run_one(c, run_dir: Path) -> dict:
        run_dir = _start_run(a, c, "both", run_dir)
        _train(c, run_dir, "both")
        _save_config(c, run_dir)
        results = _evaluate(run_dir)
        print(f"report: {build_report(run_dir)}")
        return results

    if seeds is not None or a.cv:
        from spiking.cli.repeats import run_repeats

        root = _run_dir(a, create=False)  # made once the seeds and folds fit the data
        run_repeats(cfg, root, seeds or (cfg.data.seed,), a.cv, run_one, run_files=RUN_FILES)
        print(f"report: {build_report(root)}")
    else:
        run_one(cfg, _run_dir(a))
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_summarize(a) -> int:
    from spiking.cli.repeats import resummarize

    resummarize(Path(a.target))
    return 0


def cmd_report(a) -> int:
    from spiking.report import build_report

    page = build_report(a.target, a.out)
    print(f"report: {page} (report.md and the figures beside it)")
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = argparse.ArgumentParser(prog="spiking", description=__doc__, formatter_class=fmt)
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("ingest", help="matrix + labels -> Parquet shards and manifest.json", formatter_class=fmt,
                       description="Join an expression matrix to its labels by sample id, apply filters and the "
                                   "missing-value policy, and write Parquet shards with a manifest.")
    _add_ingest_args(q, required=True)
    q.add_argument("--out", required=True, help="output folder of the shards (must not exist unless --overwrite)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    q.set_defaults(func=cmd_ingest)

    for name, func, helptext in (("train", cmd_train, "train the CNN and/or the SNN of a run"),
                                 ("run", cmd_run, "ingest (if needed), train CNN and SNN, evaluate on test")):
        q = sub.add_parser(name, help=helptext, description=helptext, formatter_class=fmt)
        q.add_argument("--run-name", default="default", help="runs/<run-name>/ holds the run's files")
        q.add_argument("--runs-dir", default="runs", help="folder holding the runs")
        q.add_argument("--shards", default=DEFAULT_SHARDS, help="Parquet shards folder")
        if name == "train":
            q.add_argument("--model", choices=["cnn", "snn", "both"], default="both",
                           help="which network to train (snn with weight transfer needs the run's cnn.pt)")
        else:
            q.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                           help="folder with tcga_mirnaseq_rpm.csv.gz and tcga_mirnaseq_labels.csv")
            _add_ingest_args(q, required=False)
            g = q.add_argument_group("repeats (figures that can tell a gain from noise)")
            g.add_argument("--seeds", default=None, metavar="S,S,...",
                           help="repeat the split and all training for each seed (e.g. 0,1,2,3,4; replaces --seed): "
                                "one run per seed in <run-name>/seed_<s>/, then summary.json with mean +- sd, "
                                "min/max and paired comparisons against the best classic baseline")
            g.add_argument("--cv", nargs="?", const="auto", default=None, type=_cv_arg, metavar="K",
                           help="stratified, patient-grouped K-fold cross-validation: each fold is the test part "
                                "once (<run-name>/fold_<k>/), validation carved from the other folds; --cv alone: "
                                f"{DEFAULT_FOLDS} folds, fewer if the smallest class has too few patients")
        _add_model_args(q)
        q.set_defaults(func=func)

    q = sub.add_parser("evaluate", help="test-split metrics of a trained run, with the classic baselines",
                       description="Score the networks of runs/<run-name>/ on their held-out test split (the saved "
                                   "split and scaling are reapplied, rows matched by sample id), tune the classic "
                                   "baselines (logistic regression, linear SVM, random forest) on the same split's "
                                   "validation part, write results.json and print the table.",
                       formatter_class=fmt)
    q.add_argument("--run-name", default="default", help="the run to evaluate (a folder under --runs-dir)")
    q.add_argument("--runs-dir", default="runs", help="folder holding the runs")
    q.set_defaults(func=cmd_evaluate)

    q = sub.add_parser("summarize", help="recompute summary.json of a repeated run from its repeats' results.json",
                       description="Read the results.json of every repeat of a repeated run (spiking run --seeds / "
                                   "--cv), recompute the figures over repeats and the paired comparisons, rewrite "
                                   "summary.json and print the tables (after spiking evaluate on a repeat, or newer "
                                   "statistics). Nothing is retrained. Run spiking report on the folder afterwards.",
                       formatter_class=fmt)
    q.add_argument("target", help="the repeated run's folder (e.g. runs/bench-top10)")
    q.set_defaults(func=cmd_summarize)

    q = sub.add_parser("report", help="report.md + report.html with figures of a run or an experiment",
                       description="Figures and tables of a run folder (config.json + results.json) or an experiment "
                                   "folder (experiment.json + results.json + trials.json), from the saved files "
                                   "(nothing is retrained): report.md, a self-contained report.html and the PNGs.",
                       formatter_class=fmt)
    q.add_argument("target", help="run folder (e.g. runs/demo) or experiment folder (local, or s3://...)")
    q.add_argument("--out", default=None, help="output folder (default: TARGET/report/)")
    q.set_defaults(func=cmd_report)

    from spiking.search.cli import add_nas_parser, add_tune_parser

    add_tune_parser(sub)
    add_nas_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spiking`` console script; returns the exit code."""
    from spiking.search.frameworks import HINTS

    # torch code runs in .venv, TensorFlow/NengoDL code in .venv-nengo: a command of the other one
    # stops with a one-line error saying where it runs, not an ImportError traceback.
    frameworks = {"torch": "torch", "snntorch": "torch", "neurobench": "torch", "tensorflow": "nengo",
                  "nengo": "nengo", "nengo_dl": "nengo", "keras": "nengo"}
    try:
        args_in = sys.argv[1:] if argv is None else list(argv)
        for i, tok in enumerate(args_in[:-1]):
            if tok == "--layout" and args_in[i + 1] in PRESETS:  # the ingest option before it was renamed
                raise CLIError(f"--layout now chooses the spatial layout of the profiles; the column preset "
                               f"{args_in[i + 1]!r} of the input files is given with --format {args_in[i + 1]}")
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        print("spiking: interrupted (a search continues with --resume; a run or repeated run starts afresh)",
              file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in frameworks:
            raise
        print(f"spiking: error: this command needs {top}, which this Python does not have: "
              f"{HINTS[frameworks[top]]}", file=sys.stderr)
        return 2
    except SpikingError as e:  # a user error: one line; anything else is a bug and shows its traceback
        print(f"spiking: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
