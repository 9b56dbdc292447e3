"""The entry point of ``spiking report``: detect the folder's kind, pick its sections, render
report.md / report.html, write them into a local folder or upload them to storage.

The sections are in :mod:`.run`, :mod:`.activity`, :mod:`.snn_k`, :mod:`.nas` and
:mod:`.ablation`, the summary table in :mod:`.tables`. Details: docs/modules.md,
section ``spiking.report.build``.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from spiking.report import ablation, activity, nas, repeats, run, snn_k
from spiking.report.inputs import ReportError, ReportInputs, detect_kind
from spiking.report.render import Section, write_report
from spiking.report.tables import section_summary


def _intro(inp: ReportInputs) -> tuple[str, list[str]]:
    """The page's title and opening lines: what the folder is, its search, its data and split."""
    r = inp.results
    d = r.get("dataset") or {}
    sizes = (r.get("split") or {}).get("sizes") or {}
    name = (r.get("run") or {}).get("name") or inp.root.name
    lines = []
    if inp.kind == "run":
        title = f"Run report: {name}"
        lines.append(f"Run folder: {inp.source}")
    elif inp.kind == "nas":
        s = r.get("search") or {}
        nas = inp.nas or {}
        title = f"Architecture search report: {nas.get('name') or name}"
        gens = sorted({int(x["generation"]) for x in inp.rows or [] if x.get("generation") is not None})
        failed = sum(1 for x in inp.rows or [] if x.get("error"))
        lines.append(f"Architecture-search folder: {inp.source}. {s.get('method') or 'Fast-DENSER (1+lambda) ES'}"
                     + (f", budget {nas.get('budget') or s.get('budget')}" if nas.get("budget") or s.get("budget")
                        else "")
                     + f": {len(inp.rows or [])} individuals over {len(gens)} generations, {failed} failed. The best "
                       "network (cnn_k) was scored once on the test split, beside the logistic regression.")
    else:
        e = inp.experiment or {}
        title = f"Experiment report: {e.get('experiment') or name}"
        lines.append(f"Experiment folder: {inp.source}. {e.get('description') or ''}".rstrip())
        s = r.get("search") or {}
        facts = [f"budget {(e.get('budget') or {}).get('name')}" if (e.get("budget") or {}).get("name") else None,
                 f"seed {e['seed']}" if e.get("seed") is not None else None,
                 f"{s.get('n_trials', len(inp.trials or []))} trials",
                 f"{s['n_stopped_early']} stopped early by the scheduler" if s.get("n_stopped_early") is not None
                 else None,
                 f"{s['n_errors']} failed" if s.get("n_errors") is not None else None]
        lines.append("Search: " + ", ".join(f for f in facts if f) + ".")
        w = e.get("weights") if isinstance(e.get("weights"), dict) else {}
        if inp.converted and w.get("source"):
            lines.append(f"Weights: converted from {w['source']}"
                         + (" (built on the same split, checked)." if w.get("split_verified") else "."))
    lines.append(f"Data: {d.get('n_samples', '?')} samples x {d.get('n_features', '?')} features "
                 f"({d.get('units') or 'units not recorded'}), {len(inp.classes)} classes; split "
                 + ", ".join(f"{k} {v}" for k, v in sizes.items())
                 + f" (seed {(r.get('split') or {}).get('seed', '?')}).")
    lines.append(f"Generated {_dt.datetime.now().isoformat(timespec='seconds')} from the saved files "
                 "(nothing retrained).")
    return title, lines


# --------------------------------------------------------------------------- entry point
REPORT_PAGES = ("report.md", "report.html")
_IMAGE_REF = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def _report_pngs(md: str) -> set[str]:
    """The PNGs a report.md refers to that are its own (plain file names beside it).

    Only these are removed when a new report replaces it: any other file in the folder,
    a user's own PNG included, is left alone.
    """
    return {ref for ref in _IMAGE_REF.findall(md)
            if ref.endswith(".png") and "/" not in ref and "\\" not in ref and ref not in (".", "..")}


def _install_order(names: list[str]) -> list[str]:
    """Figures first, the pages last: an old report.md never points at a figure that is not there yet."""
    return sorted(names, key=lambda n: (n in REPORT_PAGES, n))


def _out_label(out_dir: str | Path | None, out: Path | str) -> str:
    return f"--out {out_dir}" if out_dir is not None else f"the report folder {out}"


def _check_local_out(out: Path, label: str) -> None:
    """``out`` is, or can become, a folder: neither it nor a folder above it is a file."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise ReportError(f"{label} is a file, not a folder" if p == out else
                                  f"{label}: {p} is a file, not a folder")
            return


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError as e:
        if e.errno != errno.EXDEV:  # the output folder is another mount: copy instead
            raise
        shutil.copy2(src, dst)
        src.unlink()



def _sections(inp: ReportInputs, out: Path) -> list[Section]:
    """The sections of the folder's kind, in page order; the figures are drawn into ``out``."""
    if inp.kind == "nas":
        sections = [run.section_classes(inp, out), nas.section_nas_settings(inp), nas.section_nas_progress(inp, out),
                    nas.section_nas_best(inp), nas.section_nas_rows(inp), run.section_confusion(inp, out)]
    elif inp.kind == "experiment" and isinstance(inp.results.get("ablation"), dict):
        sections = [run.section_classes(inp, out), ablation.section_ablation(inp, out)]
    else:
        sections = [run.section_classes(inp, out)]
        if inp.kind == "run":
            sections.append(run.section_layout(inp, out))
        sections += [snn_k.section_training(inp) if inp.converted else run.section_curves(inp, out),
                     run.section_confusion(inp, out)]
        act = snn_k.section_activity_converted(inp, out) if inp.converted else activity.section_activity(inp, out)
        if act is not None:
            sections.append(act)
        if inp.converted:
            notes = snn_k.section_conversion_notes(inp)
            if notes is not None:
                sections.append(notes)
        if inp.kind == "experiment":
            sections.append(run.section_tradeoff(inp, out))
    sections.append(section_summary(inp))
    return sections


def _render(inp: ReportInputs, out: Path) -> Path:
    """Draw every figure and write report.md / report.html into the (empty) folder ``out``."""
    try:
        if inp.kind == "repeats":
            sections, (title, intro) = repeats.sections(inp, out), repeats.intro(inp)
        else:
            sections = _sections(inp, out)
            title, intro = _intro(inp)
        _, page = write_report(title, intro, sections, out)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        # a structure the checks of the JSON files let through: one line, not a traceback
        raise ReportError(f"{inp.source}: unexpected content in the saved files ({type(e).__name__}: {e})") from None
    return page


def _write_local(inp: ReportInputs, out: Path, label: str) -> Path:
    """Build the report in a temporary folder beside ``out``, then move its files into ``out``.

    Only when every figure and both pages were written are the files moved in; the PNGs
    of the previous report in ``out`` that the new one does not have are then removed.
    On any failure ``out`` is left as it was and the temporary folder is removed.
    """
    _check_local_out(out, label)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as e:
        raise ReportError(f"{label}: cannot create the folder ({e.strerror or e})") from None
    try:
        page = _render(inp, stage)
        old_md = out / "report.md"
        old = _report_pngs(old_md.read_text(errors="replace")) if old_md.is_file() else set()
        try:
            out.mkdir(exist_ok=True)
        except OSError as e:
            raise ReportError(f"{label}: cannot create the folder ({e.strerror or e})") from None
        new = [f.name for f in stage.iterdir()]
        for name in _install_order(new):
            _move(stage / name, out / name)
        for name in old - set(new):
            (out / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out / page.name


def _storage_out(out_dir: str):
    """``(filesystem, path)`` of a URI ``--out``; ReportError when it is malformed or a file."""
    from spiking.artifacts import storage as st

    try:
        fs, path = st.resolve_storage(out_dir)
        is_file = st.is_file(fs, path)
    except Exception as e:  # StorageError, or the storage is unreachable
        raise ReportError(f"--out {out_dir}: {e}") from None
    if is_file:
        raise ReportError(f"--out {out_dir} is a file, not a folder")
    return fs, path


def _upload(src: Path, fs, dest: str, page: str) -> str:
    """Copy the finished report in ``src`` to ``dest`` on ``fs`` (figures first, pages last), then remove
    the PNGs of the report that was there before and that the new one does not have; returns the page's URI."""
    from spiking.artifacts import storage as st

    where = st.to_uri(fs, dest)
    try:
        old_md = st.join(fs, dest, "report.md")
        old = _report_pngs(st.read_text(fs, old_md)) if st.is_file(fs, old_md) else set()
        new = [f.name for f in src.iterdir() if f.is_file()]
        for name in _install_order(new):
            st.write_bytes(fs, st.join(fs, dest, name), (src / name).read_bytes())
        for name in sorted(old - set(new)):
            if st.is_file(fs, st.join(fs, dest, name)):
                fs.delete_file(st.join(fs, dest, name))
    except Exception as e:
        raise ReportError(f"cannot upload the report to {where}: {type(e).__name__}: {e}") from None
    return st.to_uri(fs, st.join(fs, dest, page))


def build_report(target: str | Path, out_dir: str | Path | None = None) -> Path | str:
    """Write the report of a run folder, an experiment folder or an architecture-search folder.

    Args:
        target: a run folder (``config.json`` + ``results.json``, e.g. ``runs/demo``), an
            experiment folder (``experiment.json`` + ``results.json`` + ``trials.json``; the
            NengoDL conversion experiment ``snn_k`` included) or an architecture-search
            folder (``nas.json`` + ``generations.json`` + ``results.json``), a local path or
            an ``s3://bucket/prefix/experiment`` URI (read with the credentials of
            ``spiking.artifacts.storage``).
        out_dir: where ``report.md``, ``report.html`` and the PNGs go; default
            ``<target>/report/`` (for an S3 target, uploaded there). A local folder, or a
            storage URI (``s3://...``, ``file://...``) the finished report is uploaded to.
            The report is built in a temporary folder and moved into place only once it is
            complete; of a previous report there, only the PNGs its report.md refers to are
            replaced or removed.

    Returns:
        the path of ``report.html`` (``report.md`` and the PNGs are beside it); for a
        report uploaded to storage, its URI (a ``str``).

    Raises:
        ReportError: the target does not exist, is none of the three kinds of folder,
            or its results.json / config.json / experiment.json / trials.json / nas.json /
            generations.json / front.json are missing or malformed; ``out_dir`` is empty, a file, or cannot be written.
    """
    if out_dir is not None and not str(out_dir).strip():
        raise ReportError("--out is empty: name the folder the report goes to")
    if "://" in str(target):
        return _build_remote(str(target), out_dir)
    root = Path(os.path.abspath(target))  # "." is named by its real folder in messages and hints
    kind = detect_kind(root)
    inp = repeats.RepeatsInputs(root) if kind == "repeats" else ReportInputs(root, kind)
    if out_dir is not None and "://" in str(out_dir):
        fs, dest = _storage_out(str(out_dir))
        with tempfile.TemporaryDirectory(prefix="spiking-report-") as tmp:
            page = _write_local(inp, Path(tmp) / "report", f"--out {out_dir}")
            return _upload(page.parent, fs, dest, page.name)
    # absolute: the figures are referenced relative to this folder, whatever the working directory
    out = Path(os.path.abspath(out_dir if out_dir is not None else root / "report"))
    return _write_local(inp, out, _out_label(out_dir, out))


def _build_remote(uri: str, out_dir: str | Path | None) -> Path | str:
    """Report of a folder in storage: copy its files down, build locally, upload the report."""
    import pyarrow.fs as pafs

    from spiking.artifacts import storage as st

    try:
        fs, path = st.resolve_storage(uri)
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=False, allow_not_found=True))
    except Exception as e:
        raise ReportError(f"cannot read {uri}: {e}") from None
    remote_out = out_dir is None or "://" in str(out_dir)
    if remote_out:  # checked before anything is copied down
        dest_fs, dest = (fs, st.join(fs, path, "report")) if out_dir is None else _storage_out(str(out_dir))
    with tempfile.TemporaryDirectory(prefix="spiking-report-") as tmp:
        local = Path(tmp) / "target" / (path.rstrip("/").rsplit("/", 1)[-1] or "target")
        local.mkdir(parents=True)
        for info in infos:
            if info.type == pafs.FileType.File and (info.base_name.endswith((".json", ".pt", ".joblib"))
                                                    or info.base_name == "activity.png"):
                (local / info.base_name).write_bytes(st.read_bytes(fs, info.path))
        try:
            inp = ReportInputs(local, detect_kind(local), source=uri)
        except ReportError as e:  # name the stored files, not their temporary copies
            raise ReportError(str(e).replace(str(local), uri.rstrip("/"))) from None
        if not remote_out:
            out = Path(os.path.abspath(out_dir))
            return _write_local(inp, out, _out_label(out_dir, out))
        page = _write_local(inp, Path(tmp) / "report", _out_label(out_dir, st.to_uri(dest_fs, dest)))
        return _upload(page.parent, dest_fs, dest, page.name)


__all__ = ["build_report", "ReportError"]
