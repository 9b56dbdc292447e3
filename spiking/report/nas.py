"""Sections of an architecture-search folder (``spiking nas``): its settings, progress
(fitness per generation, accuracy against size), the best architecture and every individual."""

from __future__ import annotations

import json
import math
from pathlib import Path

from spiking.report import figures as fg
from spiking.report.inputs import ReportInputs, is_num
from spiking.report.render import Bullets, Image, Note, Section, Table, Text
from spiking.report.tables import pct, si


def nas_settings(inp: ReportInputs) -> dict:
    """The search's settings: nas.json's, else results.json's search block ({} when neither has any)."""
    return (inp.nas or {}).get("settings") or ((inp.results.get("search") or {}).get("settings") or {})


def nas_best(inp: ReportInputs) -> dict | None:
    """The best individual: results.json's search block, else best.json; None when neither names one."""
    best = (inp.results.get("search") or {}).get("best")
    if isinstance(best, dict) and best.get("id"):
        return best
    f = inp.root / "best.json"
    if f.is_file():
        try:
            b = json.loads(f.read_text())
            return b if isinstance(b, dict) and b.get("id") else None
        except ValueError:
            return None
    return None


def nas_front(inp: ReportInputs) -> list[dict]:
    """The individuals of the front: front.json, else results.json's search block ([] when neither)."""
    if inp.front is not None:
        return [r for r in inp.front if isinstance(r, dict)]
    front = (inp.results.get("search") or {}).get("front")
    return [r for r in front if isinstance(r, dict)] if isinstance(front, list) else []


def section_nas_settings(inp: ReportInputs) -> Section:
    """The search's settings as a two-column table (setting, value)."""
    sec = Section("Search settings")
    nas = inp.nas or {}
    s = nas_settings(inp)
    search = inp.results.get("search") or {}
    rows = []

    def add(label, value):
        if value is not None and value != "":
            rows.append([label, str(value)])

    add("method", search.get("method") or "Fast-DENSER (1+lambda) evolution strategy")
    add("budget", nas.get("budget") or search.get("budget"))
    add("generations", s.get("generations"))
    add("lambda (offspring per generation)", s.get("offspring"))
    if s.get("time_budget_s") is not None:
        add("time budget per individual (s)", f"{float(s['time_budget_s']):g}")
    if s.get("max_params") is not None:
        add("most parameters", f"{int(s['max_params']):,}")
    add("most epochs", s.get("max_epochs"))
    obj = s.get("objectives")
    add("objectives", ", ".join(map(str, obj)) if isinstance(obj, list) else obj)
    add("grammar", nas.get("grammar_file"))
    if s.get("require_relu") is not None:
        add("ReLU required (a network NengoDL can make spike)", "yes" if s["require_relu"] else "no")
    add("seed", s.get("seed"))
    add("CPUs per individual", s.get("cpus_per_individual"))
    if "max_train_rows" in s:
        add("training rows", "all" if s["max_train_rows"] is None else s["max_train_rows"])
    rates = nas.get("rates")
    if isinstance(rates, dict) and rates:
        add("mutation rates", ", ".join(f"{k} {v:g}" if is_num(v) else f"{k} {v}" for k, v in rates.items()))
    d = s.get("data")
    if isinstance(d, dict) and d:
        add("data", ", ".join(f"{k} {v}" for k, v in d.items()))
    n = len(inp.rows or [])
    failed = sum(1 for r in inp.rows or [] if r.get("error"))
    add("individuals evaluated", f"{n} ({failed} failed)")
    sha = nas.get("split_sha256") or search.get("split_sha256")
    if sha:
        add("split fingerprint (sha256)", f"{sha[:16]}...")
    sec.add(Table(["setting", "value"], rows, "From nas.json (and results.json's search block). Fitness is the "
                                              "validation accuracy; the test split is scored once, after the search."))
    return sec


def _parent_line(rows: list[dict], best: dict | None) -> list[tuple[int, float]]:
    """``(generation, fitness)`` of the parent kept after each generation: the parent of the next
    generation's offspring, and after the last generation the search's best."""
    by_id = {r["id"]: r for r in rows}
    gens = sorted({int(r["generation"]) for r in rows if r.get("generation") is not None})
    line = []
    for i, g in enumerate(gens):
        pid = None
        if i + 1 < len(gens):
            pid = next((r.get("parent") for r in rows if r.get("generation") == gens[i + 1] and r.get("parent")), None)
        elif best is not None:
            pid = best.get("id")
        p = by_id.get(pid) if pid else None
        if p is not None and is_num(p.get("fitness")):
            line.append((g, float(p["fitness"])))
    return line


def section_nas_progress(inp: ReportInputs, out: Path) -> Section:
    """Fitness by generation with the parent kept, and fitness against parameters with the front."""
    sec = Section("Search progress")
    rows = [r for r in inp.rows or [] if r.get("generation") is not None]
    scored = [r for r in rows if is_num(r.get("fitness")) and math.isfinite(r["fitness"])]
    if not scored:
        return sec.add(Note("No individual of generations.json has a fitness."))
    best = nas_best(inp)
    ids = [r["id"] for r in scored]
    best_i = ids.index(best["id"]) if best is not None and best.get("id") in ids else None
    failed = [bool(r.get("error")) for r in scored]
    p = fg.nas_generations([int(r["generation"]) for r in scored], [float(r["fitness"]) for r in scored],
                           out / "nas_generations.png", parent_line=_parent_line(rows, best), failed=failed,
                           train_longer=[bool(r.get("train_longer")) for r in scored], best=best_i,
                           title=f"{len(scored)} individuals: validation accuracy by generation")
    lam = nas_settings(inp).get("offspring")
    sec.add(Image(p, "Fitness (validation accuracy) of every individual, by generation: generation 0 is the random "
                     "initial population"
                     + (f" (lambda + 1 = {int(lam) + 1} individuals)" if is_num(lam) else "")
                     + ", each later generation the offspring of the parent; hollow markers are 'train longer' "
                       "offspring (the parent trained further)"
                     + (", crosses failed individuals (fitness 0)" if any(failed) else "")
                     + ". Red: the parent kept after each generation, the fittest of the parent and its offspring "
                       "(the (1+lambda) selection; ties go to fewer parameters)."))
    ok = [r for r in scored if not r.get("error") and is_num(r.get("parameters"))]
    if ok:
        front_ids = {r.get("id") for r in nas_front(inp)}
        ok_ids = [r["id"] for r in ok]
        objectives = nas_settings(inp).get("objectives") or []
        p = fg.nas_accuracy_parameters([float(r["parameters"]) for r in ok], [float(r["fitness"]) for r in ok],
                                       out / "nas_accuracy_parameters.png",
                                       front=[i for i, rid in enumerate(ok_ids) if rid in front_ids],
                                       best=ok_ids.index(best["id"]) if best is not None and best["id"] in ok_ids
                                       else None,
                                       title=f"{len(ok)} individuals: validation accuracy vs parameters")
        if "parameters" in objectives:
            how = ("red: the search's accuracy/size Pareto front (front.json: no other individual is as accurate "
                   "with fewer or equal parameters).")
        else:
            how = ("red: front.json, which holds only the best individual: the search's objectives were "
                   f"{', '.join(map(str, objectives)) or 'accuracy'} alone, so size was not traded against accuracy.")
        sec.add(Image(p, "Fitness (validation accuracy) of every individual against its trainable parameters; " + how
                         + (f" {len(scored) - len(ok)} failed individuals are left out." if len(ok) < len(scored)
                            else "")))
        missing = [rid for rid in front_ids if rid not in ok_ids]
        if missing:
            sec.add(Note(f"front.json names individuals not in generations.json: {', '.join(map(str, missing))}."))
    return sec


def section_nas_best(inp: ReportInputs) -> Section:
    """The best individual's scores, size and phenotype."""
    sec = Section("Best architecture")
    best = nas_best(inp)
    if best is None:
        return sec.add(Note("results.json and best.json name no best individual."))
    facts = [f"individual {best['id']}"]
    if best.get("generation") is not None:
        facts.append(f"generation {best['generation']}")
    if is_num(best.get("fitness")):
        facts.append(f"validation accuracy {pct(best['fitness'])}%")
    if is_num(best.get("val_balanced_accuracy")):
        facts.append(f"validation balanced accuracy {pct(best['val_balanced_accuracy'])}%")
    if is_num(best.get("parameters")):
        facts.append(f"{int(best['parameters']):,} parameters")
    if is_num(best.get("macs")):
        facts.append(f"{si(best['macs'])} MACs per inference")
    if best.get("epochs") is not None:
        facts.append(f"{best['epochs']} epochs" + (f" (stopped by {best['stopped_by']})" if best.get("stopped_by")
                                                   else ""))
    sec.add(Text("The best individual: " + ", ".join(facts) + ". It is cnn_k in the results below (saved as "
                 "best_model.keras)."))
    if best.get("phenotype"):
        sec.add(Text("Phenotype (the grammar's derivation: layers in order, then the learning block):"))
        sec.add(Bullets([str(best["phenotype"])]))
    return sec


def section_nas_rows(inp: ReportInputs) -> Section:
    """One table row per individual of generations.json, in the order evaluated."""
    sec = Section("Individuals (generations.json)")
    best = nas_best(inp)
    best_id = best.get("id") if best else None
    rows = []
    for r in inp.rows or []:
        muts = r.get("mutations") or []
        rows.append([str(r["id"]) + (" (best)" if r["id"] == best_id else ""),
                     str(r.get("generation", "-")), str(r.get("parent") or "-"),
                     "; ".join(map(str, muts)) if muts else ("(random)" if not r.get("parent") else "-"),
                     f"{int(r['parameters']):,}" if is_num(r.get("parameters")) else "-",
                     pct(r["fitness"]) if is_num(r.get("fitness")) else "-",
                     str(r["epochs"]) if r.get("epochs") is not None else "-",
                     f"{float(r['seconds']):.1f}" if is_num(r.get("seconds")) else "-",
                     str(r.get("stopped_by") or "-"), str(r.get("error") or "-").replace("\n", " ")])
    if not rows:
        return sec.add(Note("generations.json holds no individual."))
    sec.add(Table(["id", "generation", "parent", "mutations", "parameters", "fitness (val. accuracy, %)", "epochs",
                   "seconds", "stopped by", "error"], rows,
                  "One row per individual in the order evaluated. Mutations: what made the offspring from its parent "
                  "(add / reuse / remove a layer, re-derive a layer's parameters (dsge), change the learning block "
                  "(macro), or train the parent longer). Epochs include those a 'train longer' offspring inherited "
                  "from its parent; seconds are the individual's own training and scoring."))
    return sec

