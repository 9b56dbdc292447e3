"""The report of a repeated run (``spiking run --seeds`` / ``--cv``): the summary over repeats, the
paired comparisons against the best classic baseline, a figure of the scores per repeat, and
links to each repeat's own report."""

from __future__ import annotations

from pathlib import Path

from spiking.artifacts.summary import (
    PAIRED_HEADER,
    SUMMARY_HEADER,
    paired_caveats,
    paired_rows,
    read_summary,
    summary_rows,
)
from spiking.errors import SpikingError
from spiking.report import figures as fg
from spiking.report.inputs import ReportError
from spiking.report.render import Bullets, Image, Note, Section, Table, Text
from spiking.report.tables import DEFAULT_CONVENTION


class RepeatsInputs:
    """A repeated run's folder: its ``summary.json`` (read and checked by
    :func:`spiking.artifacts.summary.read_summary`)."""

    kind = "repeats"

    def __init__(self, root: Path, source: str | None = None):
        self.root, self.source = root, source or str(root)
        try:
            self.summary = read_summary(root / "summary.json")
        except SpikingError as e:
            raise ReportError(str(e)) from None
        except OSError as e:
            raise ReportError(f"cannot read {root / 'summary.json'}: {e.strerror or e}") from None


def intro(inp: RepeatsInputs) -> tuple[str, list[str]]:
    """The page's title and opening lines."""
    s = inp.summary
    p, d = s["protocol"], s.get("dataset") or {}
    what = {"seeds": f"one run per seed ({', '.join(map(str, p.get('seeds') or []))}): split and all training repeated",
            "cv": f"{p.get('folds')}-fold stratified, patient-grouped cross-validation (seed {(p.get('seeds') or ['?'])[0]})",
            "seeds x cv": f"{p.get('folds')}-fold cross-validation repeated for seeds {p.get('seeds')}"}[p["kind"]]
    return (f"Repeated run report: {inp.root.name}",
            [f"Folder: {inp.source}. {what[0].upper() + what[1:]}.",
             f"Data: {d.get('n_samples', '?')} samples x {d.get('n_features', '?')} features, "
             f"{len(d.get('classes') or [])} classes. Every repeat's test part was scored once."])


def sections(inp: RepeatsInputs, out: Path) -> list[Section]:
    """Summary table, paired comparisons, the score figure and the repeats' own reports."""
    s = inp.summary
    best = (s.get("best_baseline") or {}).get("name")
    stats = s.get("statistics") or {}
    sec = Section("Test figures over repeats")
    sec.add(Table(SUMMARY_HEADER, summary_rows(s),
                  caption=f"Mean ± {stats.get('sd', 'sd')}; energy per inference in microjoules (45 nm convention) "
                          "and its ratio to the CNN's; training seconds include a baseline's tuning grid."))
    if best:
        sec.add(Text(f"Best classic baseline: {best} ({s['best_baseline'].get('by')}); each baseline was tuned "
                     "on the validation part only."))
    try:
        p = fg.repeat_scores(s["models"], out / "repeat_scores.png", best_baseline=best)
        sec.add(Image(p, "Test balanced accuracy per model: bar mean, whiskers sd, dots single repeats; "
                         "baselines grey, the best outlined."))
    except ReportError as e:
        sec.add(Note(f"No figure: {e}"))
    try:
        base = next((m for m in s["models"] if m["name"] == best), None)
        p = fg.repeat_energy_accuracy(s["models"], out / "repeat_energy_accuracy.png", baseline=base,
                                      note=f"energy: {DEFAULT_CONVENTION}")
        sec.add(Image(p, "Mean test balanced accuracy against mean energy per inference of each network (error "
                         "bars: sd over repeats); dashed: the best classic baseline's mean."))
    except ReportError as e:
        sec.add(Note(f"No accuracy-energy figure: {e}"))
    out_secs = [sec]
    if s.get("paired"):
        ps = Section(f"Paired against the best classic baseline ({best})")
        ps.add(Table(PAIRED_HEADER, paired_rows(s),
                     caption=f"Network minus baseline on the same split, in percentage points. Interval: "
                             f"{stats.get('interval')}; test: {stats.get('test')}. {paired_caveats(s)}"))
        out_secs.append(ps)
    rs = Section("Repeats")
    items = []
    for r in s["repeats"]:
        page = inp.root / r["name"] / "report" / "report.html"
        try:
            there = page.is_file()
        except OSError:  # a name the file system refuses
            there = False
        bit = f"seed {r.get('seed')}" + (f", test fold {r['fold']}" if r.get("fold") is not None else "")
        # relative to this report (<root>/report/), so the links survive moving or sharing the folder
        link = f"../{r['name']}/report/report.html"
        items.append(f"{r['name']}: {bit}; report {link if there else '(none: run spiking report on it)'}")
    rs.add(Bullets(items, "Each repeat is a whole run folder with its own results.json and report:"))
    out_secs.append(rs)
    return out_secs
