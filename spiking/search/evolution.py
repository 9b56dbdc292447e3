"""Grammar-based architecture search: a (1+lambda) evolution strategy over Fast-DENSER genotypes.

Details: docs/modules.md, section ``spiking.search.evolution``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from spiking.artifacts import storage as st
from spiking.data.splits import flat_samples
from spiking.errors import SpikingError
from spiking.search.frameworks import prepare_nengo_process
from spiking.search.tuner import ray_init
from spiking.specs.phenotype import parse_phenotype
from spiking.specs.run import DataConfig, to_table

DEFAULT_STORAGE = "runs/tune"
DEFAULT_NAME = "nas"
OBJECTIVES = ("accuracy", "parameters")
#: Settings of the three budgets (``generations``, ``offspring`` = lambda, ``time_budget_s`` per
#: individual, ``max_train_rows``); the study ran 15 generations of 10 offspring.
BUDGETS = {
    "smoke": {"generations": 2, "offspring": 2, "time_budget_s": 20.0, "max_train_rows": 800},
    "small": {"generations": 6, "offspring": 4, "time_budget_s": 60.0, "max_train_rows": None},
    "paper": {"generations": 15, "offspring": 10, "time_budget_s": 300.0, "max_train_rows": None},
}
#: Environment variable naming individual ids whose training raises (tests of failure handling).
FAIL_IDS_VAR = "SPIKING_NAS_FAIL_IDS"
ROW_FIELDS = ("id", "generation", "parent", "mutations", "train_longer", "phenotype", "parameters", "macs",
              "fitness", "val_accuracy", "val_balanced_accuracy", "epochs", "seconds", "stopped_by", "error")


class NASError(SpikingError):
    """A search that cannot start or resume: a clear message, no traceback needed."""


@dataclass
class NASSettings:
    """Settings of one architecture search (see :data:`BUDGETS` for the presets).

    Attributes:
        generations: generations including generation 0 (>= 1).
        offspring: lambda, offspring per generation (>= 1).
        time_budget_s: training time per individual (seconds of wall clock).
        max_params: largest network allowed (Keras parameter count).
        max_epochs: epoch cap per individual (the time budget and early stop usually end it first).
        objectives: ``("accuracy",)`` or ``("accuracy", "parameters")``.
        seed: seeds the evolution's random state, each individual's initialisation and training.
        cpus_per_individual: Ray CPUs per training task.
        max_train_rows: stratified subset of the train part (None = all).
        data: split settings (``top_k``, ``fractions``, ``seed``, ``log2``, ``zscore``) as in the
            experiment registry, so CNN_K shares the main job's split.
        require_relu: only networks with at least one ReLU layer (conv or fc), i.e. something the
            NengoDL conversion can make spike; individuals are drawn again (up to 100 times, from the
            same random state) until they have one.
    """

    generations: int = 2
    offspring: int = 2
    time_budget_s: float = 20.0
    max_params: int = 2_000_000
    max_epochs: int = 1000
    objectives: tuple = ("accuracy",)
    seed: int = 42
    cpus_per_individual: float = 1.0
    max_train_rows: int | None = None
    data: dict = field(default_factory=lambda: to_table(DataConfig(), ("top_k", "fractions", "seed", "log2", "zscore")))
    require_relu: bool = False

    def check(self) -> None:
        """Raise :class:`NASError` for out-of-range settings."""
        if self.generations < 1 or self.offspring < 1:
            raise NASError(f"generations and offspring must be >= 1, got {self.generations}, {self.offspring}")
        if not self.time_budget_s > 0 or self.max_params < 1 or self.max_epochs < 1:
            raise NASError("time budget, max_params and max_epochs must be positive")
        if self.objectives not in (("accuracy",), ("accuracy", "parameters")):
            raise NASError(f"objectives must be accuracy or accuracy,parameters, got {','.join(self.objectives)}")
        if not self.cpus_per_individual > 0:
            raise NASError(f"cpus_per_individual must be > 0, got {self.cpus_per_individual}")
        if self.offspring >= 100:
            raise NASError(f"offspring (lambda) must be < 100 (individual seeds are seed*1000 + generation*100 + k), "
                           f"got {self.offspring}")
        if self.seed < 0 or self.seed * 1000 + self.generations * 100 + self.offspring >= 2**32:
            raise NASError(f"seed must be >= 0 and seed*1000 + generations*100 + lambda < 2**32 (Keras seeds), "
                           f"got seed {self.seed}")
        if self.max_train_rows is not None and self.max_train_rows < 2:
            raise NASError(f"max_train_rows must be >= 2 (or unset for all rows), got {self.max_train_rows}")




def evaluate_individual(data: dict, job: dict) -> dict:
    """Train one individual and score it on the validation part (runs in a Ray worker).

    Args:
        data: ``X_train`` (n, L) float32 in [0, 1], ``y_train`` (n,), ``X_val``, ``y_val``,
            ``class_names``, ``L``, ``n_classes``.
        job: the individual's row (``id``, ``phenotype``, ``train_longer``, ...) plus ``storage``
            (URI of the search folder), ``parent_model`` (path of the parent's network, for
            train-longer offspring), ``prior_epochs``, ``time_budget_s``, ``max_epochs``, ``seed``, ``threads``.

    Returns:
        The row completed with ``fitness`` (validation accuracy), ``val_accuracy``,
        ``val_balanced_accuracy``, ``epochs`` (including inherited ones), ``seconds`` and
        ``stopped_by``; on any failure ``fitness`` 0 and ``error`` = the reason.
    """
    prepare_nengo_process()
    t0 = time.perf_counter()
    row = {k: job.get(k) for k in ROW_FIELDS}
    try:
        from spiking.keras.fit import limit_tf_threads

        limit_tf_threads(int(job.get("threads", 1)))
        from spiking.evaluation.metrics import classification_metrics
        from spiking.keras.fit import fit_keras, load_keras, save_keras
        from spiking.keras.phenotype import build_keras_model, compile_model

        if row["id"] in (os.environ.get(FAIL_IDS_VAR) or "").split(","):
            raise RuntimeError(f"failure injected by {FAIL_IDS_VAR}")
        ph = parse_phenotype(job["phenotype"])
        fs, folder = st.resolve_storage(job["storage"])
        with tempfile.TemporaryDirectory(prefix="spiking-nas-") as tmp:
            if job.get("train_longer"):
                local = Path(tmp) / "parent.keras"
                local.write_bytes(st.read_bytes(fs, job["parent_model"]))
                model = load_keras(local)
            else:
                model = build_keras_model(ph, int(data["L"]), int(data["n_classes"]), seed=int(job["seed"]))
                compile_model(model, ph.learning)
            fit = fit_keras(model, ph.learning, data["X_train"], data["y_train"], data["X_val"], data["y_val"],
                            time_budget_s=float(job["time_budget_s"]), max_epochs=int(job["max_epochs"]),
                            seed=int(job["seed"]))
            losses = fit.history.get("loss") or []
            if not losses or not np.all(np.isfinite(losses)):
                raise FloatingPointError(f"training diverged: loss {losses[-3:] if losses else 'none'}")
            logits = model.predict(data["X_val"][..., None], batch_size=512, verbose=0)
            m = classification_metrics(data["y_val"], np.argmax(logits, axis=1), list(data["class_names"]))
            out = Path(tmp) / "model.keras"
            save_keras(model, out)
            st.write_bytes(fs, st.join(fs, folder, "individuals", f"{row['id']}.keras"), out.read_bytes())
        row.update(fitness=m["accuracy"], val_accuracy=m["accuracy"], val_balanced_accuracy=m["balanced_accuracy"],
                   epochs=int(job.get("prior_epochs") or 0) + int(fit.epochs), stopped_by=fit.stopped_by, error=None)
    except Exception as e:  # an individual that cannot train is unfit, not the end of the search
        row.update(fitness=0.0, val_accuracy=0.0, val_balanced_accuracy=0.0,
                   epochs=int(job.get("prior_epochs") or 0), stopped_by="error", error=f"{type(e).__name__}: {e}")
    row["seconds"] = time.perf_counter() - t0
    return row


# --------------------------------------------------------------------------- bookkeeping
def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


def _write_json(fs, path: str, doc) -> None:
    st.write_text(fs, path, json.dumps(doc, indent=2, default=str) + "\n")


def _read_json(fs, path: str):
    try:
        return json.loads(st.read_text(fs, path))
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise NASError(f"{st.to_uri(fs, path)} is damaged ({e}); --overwrite starts the search over") from None


def _rows_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=ROW_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "mutations": ";".join(r.get("mutations") or [])})
    return buf.getvalue()


def _better(a: dict, b: dict) -> bool:
    """True if row ``a`` beats row ``b``: higher fitness, then fewer parameters (then b, the elder, stays)."""
    return (a["fitness"], -a["parameters"]) > (b["fitness"], -b["parameters"])


def has_relu(phenotype: str) -> bool:
    """True if a conv or fc layer of ``phenotype`` has a ReLU activation (something NengoDL can make spike)."""
    return any(layer.params.get("act") == "relu" for layer in parse_phenotype(phenotype).layers)


def _draw(make, ok, tries: int = 100):
    """``make()`` until ``ok`` accepts the individual; NASError after ``tries`` refusals."""
    for _ in range(tries):
        ind = make()
        if ok(ind):
            return ind
    raise NASError(f"no network with a ReLU layer in {tries} draws: the grammar cannot (or hardly ever does) "
                   "produce act:relu; use --grammar fast_denser_1d_relu or drop --require-relu")


def pick_parent(rows: list[dict]) -> dict:
    """The fittest row (ties: fewer parameters, then the earliest in ``rows``)."""
    best = rows[0]
    for r in rows[1:]:
        if _better(r, best):
            best = r
    return best


# --------------------------------------------------------------------------- the search
def run_nas(*, shards: str, storage: str | None = None, name: str = DEFAULT_NAME, settings: NASSettings | None = None,
            grammar_path: str | None = None, resume: bool = False, overwrite: bool = False,
            ray_num_cpus: int | None = None, budget: str | None = None, log=print) -> dict:
    """Run (or resume) a grammar-based architecture search and score its best network on test.

    Args:
        shards: Parquet shards written by ``spiking ingest`` (local path or URI).
        storage: local folder or ``s3://bucket/prefix`` (default ``runs/tune``); the search
            folder is ``<storage>/<name>``.
        settings: :class:`NASSettings` (default: the ``smoke`` budget).
        grammar_path: a grammar file in the Fast-DENSER BNF style, or the name of a shipped one
            (default ``fast_denser_1d``, the study's; ``fast_denser_1d_relu``: ReLU activations only,
            so that the NengoDL conversion has neurons to make spike).
        resume: continue the search in that folder after its last finished generation.
        overwrite: delete an existing search folder and start over.
        ray_num_cpus: CPUs of an embedded Ray (when ``RAY_ADDRESS`` is unset); None = all.
        budget: the budget name the settings came from (recorded; resume checks it).
        log: where progress lines go.

    Returns:
        ``{"path", "rows", "best", "front", "results", "table", "seconds"}``.

    Raises:
        NASError, StorageError, GrammarError (ValueErrors): anything that stops the search
        before an individual trains, with the reason.
    """
    prepare_nengo_process()
    from spiking.data.preprocess.prepare import split_fingerprint
    from spiking.search.data import load_split
    from spiking.search.genotype import Individual, MutationRates, Structure, mutate, pareto_front, random_individual
    from spiking.search.grammar import Grammar

    t0 = time.perf_counter()
    s = settings or NASSettings(**{k: v for k, v in BUDGETS["smoke"].items()})
    s.check()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or ""):
        raise NASError(f"--name must be a plain folder name (letters, digits, _ . -, not starting with . or -), "
                       f"got {name!r}")
    grammar_text, grammar_name = read_grammar(grammar_path)
    try:
        grammar = Grammar.from_text(grammar_text, name=grammar_name)
    except RecursionError:
        raise NASError(f"grammar {grammar_name}: its productions nest too deeply to be read") from None
    fs, root = st.open_storage(storage or DEFAULT_STORAGE)
    folder = st.join(fs, root, name)
    uri = st.to_uri(fs, folder)
    nas_file = st.join(fs, folder, "nas.json")
    state_file = st.join(fs, folder, "state.json")

    prep_full, prep, dataset_info = load_split(shards, s.data, s.max_train_rows, s.seed)
    split_sha = split_fingerprint(prep_full)
    L, C = prep.n_features, len(prep.class_names)
    if len(prep.y["train"]) < 2 * C:
        raise NASError(f"{len(prep.y['train'])} training rows for {C} classes: use --max-train-rows >= {2 * C}")
    # the grammar must give networks that fit this data before anything is written
    try:
        random_individual(grammar, Structure(), random.Random(s.seed), L, C, s.max_params, id="check")
    except (ValueError, RecursionError) as e:  # GenotypeError, GrammarError, DerivationError, PhenotypeError
        raise NASError(f"grammar {grammar_name} gives no valid network for L={L}, {C} classes, "
                       f"max_params {s.max_params:,}: {e}") from None
    meta = {"name": name, "budget": budget, "settings": asdict(s), "grammar": grammar_text,
            "grammar_file": grammar_name,
            "structure": asdict(Structure()), "rates": asdict(MutationRates()), "split_sha256": split_sha,
            "L": L, "class_names": list(prep.class_names), "shards": str(shards), "storage": st.to_uri(fs, root),
            "train_rows": int(len(prep.y["train"]))}
    meta["settings"]["objectives"] = list(s.objectives)

    if resume:
        if not st.is_file(fs, nas_file) or not st.is_file(fs, state_file):
            raise NASError(f"nothing to resume at {uri} (no nas.json/state.json there)")
        saved = _read_json(fs, nas_file)
        for key in ("settings", "grammar", "split_sha256", "L", "class_names"):
            if json.dumps(saved.get(key), sort_keys=True, default=str) != json.dumps(meta[key], sort_keys=True,
                                                                                  default=str):
                raise NASError(f"{uri} was started with other {key!r}; resume it with the same settings, grammar and "
                               "data (or start a new search with another --name)")
    elif st.exists(fs, nas_file):
        if not overwrite:
            raise NASError(f"{uri} already holds a search; use --resume to continue it, --overwrite to start over, "
                           "or another --name/--storage")
        if folder.rstrip("/") == root.rstrip("/"):  # never the storage itself (name is checked above too)
            raise NASError(f"refusing to delete the storage {uri}")
        fs.delete_dir(folder)
    if not os.environ.get("RAY_ADDRESS"):  # an embedded Ray: its CPUs are known before it starts
        have = ray_num_cpus if ray_num_cpus is not None else (os.cpu_count() or 1)
        if s.cpus_per_individual > have:
            raise NASError(f"each individual asks for {s.cpus_per_individual:g} CPUs but the Ray cluster has "
                           f"{have:g}: lower --cpus-per-individual or give Ray more (--ray-cpus)")
    if not resume:
        _write_json(fs, nas_file, meta)
        st.write_text(fs, st.join(fs, folder, "grammar.grammar"), grammar_text)

    rng = random.Random(s.seed)
    rows: list[dict] = []
    genotypes: dict[str, dict] = {}
    parent_row = None
    start_gen = 0
    if resume:
        try:
            state = _read_json(fs, state_file)
            _set_rng_state(rng, state["rng_state"])
            start_gen = int(state["next_generation"])
            rows = list(state["rows"])
            genotypes = dict(state["genotypes"])
            parent_row = next((r for r in rows if r["id"] == state["parent"]), None)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise NASError(f"{st.to_uri(fs, state_file)} is damaged ({type(e).__name__}: {e}); the search cannot "
                           "resume from it (--overwrite starts over)") from None
        if state["parent"] is not None and parent_row is None:
            raise NASError(f"{st.to_uri(fs, state_file)} names parent {state['parent']!r}, which is not among its rows")
        results_file = st.join(fs, folder, "results.json")
        if start_gen >= s.generations and st.is_file(fs, results_file):
            from spiking.artifacts.results import format_table, read_results

            log(f"{uri} finished all {s.generations} generations already: nothing to resume; its results "
                "(the test split is not scored again)")
            results = read_results(results_file, fs=fs).to_dict()
            return {"path": uri, "rows": rows, "best": parent_row, "front": _read_json(fs, st.join(fs, folder, "front.json")),
                    "results": results, "table": format_table(results["models"]), "seconds": time.perf_counter() - t0}
        where = f"parent {parent_row['id']}, fitness {parent_row['fitness']:.4f}" if parent_row else "no parent yet"
        log(f"resuming {uri} at generation {start_gen} ({where})")
    else:
        _write_json(fs, state_file, {"next_generation": 0, "rng_state": _rng_state(rng), "parent": None,
                                     "rows": [], "genotypes": {}, "done": False})

    structure, rates = Structure(), MutationRates()
    # the workers need the Keras/NengoDL process settings too (on a cluster they do not inherit ours)
    nengo_env = {"env_vars": {"RAY_TRAIN_V2_ENABLED": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}}
    started = ray_init(ray_num_cpus, runtime_env=nengo_env) if start_gen < s.generations else False
    try:
        if start_gen < s.generations:
            import ray

            cpus = ray.cluster_resources().get("CPU", 0)
            if s.cpus_per_individual > cpus:
                raise NASError(f"each individual asks for {s.cpus_per_individual:g} CPUs but the Ray cluster has "
                               f"{cpus:g}: lower --cpus-per-individual or give Ray more (--ray-cpus)")
            data_ref = ray.put({"X_train": flat_samples(prep.X["train"]), "y_train": prep.y["train"],
                                "X_val": flat_samples(prep.X["val"]), "y_val": prep.y["val"],
                                "class_names": list(prep.class_names), "L": L, "n_classes": C})
            task = ray.remote(num_cpus=s.cpus_per_individual, max_retries=1)(evaluate_individual)
        for g in range(start_gen, s.generations):
            tg = time.perf_counter()
            # offspring drawn from the random state saved at the generation boundary: the same on resume
            ok = (lambda ind: has_relu(ind.phenotype(grammar))) if s.require_relu else (lambda ind: True)
            if g == 0:
                kids = [_draw(lambda k=k: random_individual(grammar, structure, rng, L, C, s.max_params,
                                                            id=f"g0_i{k}"), ok)
                        for k in range(s.offspring + 1)]
            else:
                parent = Individual.from_json(genotypes[parent_row["id"]])
                kids = [_draw(lambda k=k: mutate(parent, grammar, structure, rates, rng, L, C, s.max_params,
                                                 id=f"g{g}_i{k}"), ok)
                        for k in range(s.offspring)]
            jobs, done = [], []
            for k, ind in enumerate(kids):
                phen = ind.phenotype(grammar)
                ph = parse_phenotype(phen)
                row = {"id": ind.id, "generation": g, "parent": ind.parent, "mutations": list(ind.mutations),
                       "train_longer": bool(ind.train_longer), "phenotype": phen,
                       "parameters": ph.count_parameters(L, C), "macs": ph.count_macs(L, C)}
                genotypes[ind.id] = ind.to_dict()
                saved_path = st.join(fs, folder, "individuals", f"{ind.id}.json")
                if st.is_file(fs, saved_path):
                    try:
                        prev = _read_json(fs, saved_path)["row"]
                    except (NASError, KeyError, TypeError):
                        prev = None  # damaged: train it again
                    has_model = st.is_file(fs, st.join(fs, folder, "individuals", f"{ind.id}.keras"))
                    if (prev and prev.get("phenotype") == phen and prev.get("train_longer") == row["train_longer"]
                            and (prev.get("error") or has_model)):
                        done.append(prev)  # evaluated before the interruption (and its network kept)
                        continue
                job = {**row, "storage": uri, "time_budget_s": s.time_budget_s, "max_epochs": s.max_epochs,
                       "seed": s.seed * 1000 + g * 100 + k, "threads": max(1, int(s.cpus_per_individual))}
                if ind.train_longer:
                    job["parent_model"] = st.join(fs, folder, "individuals", f"{parent_row['id']}.keras")
                    job["prior_epochs"] = parent_row["epochs"]
                jobs.append(job)
            pending = {task.remote(data_ref, job): job for job in jobs}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ready[0])
                try:
                    row = ray.get(ready[0])
                except Exception as e:  # the worker died (out of memory, killed node)
                    row = {**{k: job.get(k) for k in ROW_FIELDS}, "fitness": 0.0, "val_accuracy": 0.0,
                           "val_balanced_accuracy": 0.0, "epochs": int(job.get("prior_epochs") or 0),
                           "seconds": 0.0, "stopped_by": "error", "error": f"{type(e).__name__}: {e}"}
                _write_json(fs, st.join(fs, folder, "individuals", f"{row['id']}.json"),
                            {"row": row, "genotype": genotypes[row["id"]]})
                done.append(row)
            order = {ind.id: i for i, ind in enumerate(kids)}
            done.sort(key=lambda r: order[r["id"]])
            for r in done:
                if r.get("error"):
                    log(f"  {r['id']}: failed ({r['error']}); fitness 0")
            rows.extend(done)
            pool = ([parent_row] if parent_row else []) + done
            new_parent = pick_parent(pool)
            if new_parent is not parent_row:
                if new_parent["fitness"] <= 0:
                    new_parent = parent_row or new_parent
                parent_row = new_parent
                model_path = st.join(fs, folder, "individuals", f"{parent_row['id']}.keras")
                if parent_row["fitness"] > 0:
                    if not st.is_file(fs, model_path):
                        raise NASError(f"the new parent's network {st.to_uri(fs, model_path)} is missing")
                    st.write_bytes(fs, st.join(fs, folder, "best_model.keras"), st.read_bytes(fs, model_path))
                _write_json(fs, st.join(fs, folder, "best.json"), parent_row)
            _write_json(fs, st.join(fs, folder, "generations.json"), rows)
            st.write_text(fs, st.join(fs, folder, "generations.csv"), _rows_csv(rows))
            _write_json(fs, state_file, {"next_generation": g + 1, "rng_state": _rng_state(rng),
                                         "parent": parent_row["id"], "rows": rows, "genotypes": genotypes,
                                         "done": g + 1 >= s.generations})
            log(f"generation {g}: {len(done)} individuals in {time.perf_counter() - tg:.1f} s; best validation "
                f"accuracy {max(r['fitness'] for r in done):.4f}; parent {parent_row['id']} "
                f"({parent_row['fitness']:.4f}, {parent_row['parameters']:,} parameters)")
    finally:
        if started:
            import ray

            ray.shutdown()

    if parent_row is None or parent_row["fitness"] <= 0:
        raise NASError(f"no individual of {uri} trained successfully; see the error column of generations.csv")
    front = pareto_front([r for r in rows if not r.get("error")]) if "parameters" in s.objectives else [parent_row]
    _write_json(fs, st.join(fs, folder, "front.json"), front)
    out = _score_on_test(fs, folder, parent_row, prep, rows, meta, dataset_info, front)
    return {"path": uri, "rows": rows, "best": parent_row, "front": front, **out,
            "seconds": time.perf_counter() - t0}


def shipped_grammars() -> list[str]:
    """Names of the grammars shipped in ``spiking/search/grammars/`` (without ``.grammar``)."""
    from importlib import resources

    return sorted(p.name.removesuffix(".grammar") for p in (resources.files("spiking.search") / "grammars").iterdir()
                  if p.name.endswith(".grammar"))


def read_grammar(spec: str | None) -> tuple[str, str]:
    """``(text, name)`` of a grammar: ``None`` = the study's (``fast_denser_1d``), a shipped name
    (:func:`shipped_grammars`, e.g. ``fast_denser_1d_relu``), or a file path.

    Raises:
        NASError: neither a shipped name nor a readable file.
    """
    from importlib import resources

    spec = spec or "fast_denser_1d"
    if spec in shipped_grammars():
        res = resources.files("spiking.search") / "grammars" / f"{spec}.grammar"
        return res.read_text(encoding="utf-8"), f"{spec}.grammar"
    p = Path(spec)
    if not p.is_file():
        raise NASError(f"grammar {spec!r} is neither a shipped grammar ({', '.join(shipped_grammars())}) nor a file")
    try:
        return p.read_text(encoding="utf-8-sig"), str(p)  # -sig: a byte-order mark is not part of line 1
    except UnicodeDecodeError as e:
        raise NASError(f"grammar {p} is not UTF-8 text ({e})") from None


def lineage_seconds(rows: list[dict], row: dict) -> float:
    """Training seconds of ``row`` plus those of the ancestors it continued (train-longer chain)."""
    by_id = {r["id"]: r for r in rows}
    total, cur = 0.0, row
    while cur is not None:
        total += float(cur.get("seconds") or 0.0)
        cur = by_id.get(cur.get("parent")) if cur.get("train_longer") else None
    return total


def _score_on_test(fs, folder: str, best: dict, prep, rows: list[dict], meta: dict, dataset_info: dict,
                   front: list[dict]) -> dict:
    """Score the best network ONCE on the test split beside the logistic regression; write results."""
    from spiking.artifacts.results import Results, format_table, write_results
    from spiking.evaluation.baseline import evaluate_logreg
    from spiking.evaluation.metrics import classification_metrics
    from spiking.keras.fit import load_keras
    from spiking.specs.energy import CONVENTION, E_MAC_PJ

    with tempfile.TemporaryDirectory(prefix="spiking-nas-") as tmp:
        local = Path(tmp) / "best_model.keras"
        local.write_bytes(st.read_bytes(fs, st.join(fs, folder, "best_model.keras")))
        model = load_keras(local)
        X = flat_samples(prep.X["test"])[..., None]
        t = time.perf_counter()
        logits = model.predict(X, batch_size=256, verbose=0)
        ms = 1000 * (time.perf_counter() - t) / len(X)
        entry = {"name": "cnn_k", "test": classification_metrics(prep.y["test"], np.argmax(logits, axis=1),
                                                                  list(prep.class_names)),
                 "parameters": int(model.count_params()), "train_seconds": lineage_seconds(rows, best),
                 "inference_ms_per_sample": ms, "best_epoch": int(best["epochs"]), "architecture": best["phenotype"],
                 "efficiency": {"macs": int(best["macs"]), "synops": 0, "energy_pj": float(best["macs"]) * E_MAC_PJ,
                                "convention": CONVENTION},
                 "search": {k: best[k] for k in ("id", "generation", "fitness", "val_balanced_accuracy", "epochs")}}
        models = [entry, evaluate_logreg(prep, seed=int(meta["settings"]["seed"]))]
        counts = {c: int(np.sum(prep.y["test"] == i)) for i, c in enumerate(prep.class_names)}
        typed = Results.build(dataset_info, {**prep.split_info, "test_class_counts": counts}, models,
                              search={"kind": "nas", "method": "Fast-DENSER (1+lambda) ES", "budget": meta["budget"],
                                      "settings": meta["settings"], "n_individuals": len(rows),
                                      "n_failed": sum(1 for r in rows if r.get("error")), "best": best, "front": front,
                                      "path": st.to_uri(fs, folder), "split_sha256": meta["split_sha256"]},
                              run={"name": meta["name"], "config": {"nas": meta["name"], "seed": meta["settings"]["seed"]}})
        local_res = write_results(typed, Path(tmp) / "results.json")
        results = typed.to_dict()
        st.write_bytes(fs, st.join(fs, folder, "results.json"), local_res.read_bytes())
    table = format_table(models)
    st.write_text(fs, st.join(fs, folder, "results.txt"), table + "\n")
    return {"results": results, "table": table}


__all__ = ["run_nas", "read_grammar", "shipped_grammars", "NASSettings", "NASError", "BUDGETS", "evaluate_individual", "pick_parent", "lineage_seconds"]
