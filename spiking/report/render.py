"""Write a report as Markdown (``report.md``, PNGs referenced by relative path) and as one
self-contained HTML page (``report.html``, the PNGs embedded as base64 ``data:`` URIs).

A report is a title, a few lines under it, and a list of :class:`Section`; a section
holds blocks: :class:`Text` (a plain paragraph), :class:`Note` (a remark, e.g. why a
figure is missing), :class:`Bullets` (a list of items), :class:`Image` (a PNG with its
caption) and :class:`Table`.
Text is plain: it is escaped for HTML (``html.escape``) and for Markdown tables
(``|``), never interpreted as markup.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

from spiking.report.inputs import ReportError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Text:
    text: str


@dataclass
class Note:
    text: str


@dataclass
class Bullets:
    """A list of plain-text items, under an optional lead-in line."""

    items: list[str]
    lead: str = ""


@dataclass
class Image:
    """A PNG file and its caption; ``path`` is absolute or relative to the report folder."""

    path: Path
    caption: str
    alt: str = ""


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


Block = Union[Text, Note, Bullets, Image, Table]


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, block: Block) -> "Section":
        self.blocks.append(block)
        return self


def _md_cell(s: str) -> str:
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _short(text: str, limit: int = 100) -> str:
    """Alt text: the caption's first sentence, at most ``limit`` characters."""
    first = str(text).replace("\n", " ").split(". ")[0]
    return first if len(first) <= limit else first[:limit - 3].rstrip() + "..."


def _rel(path: Path, out_dir: Path) -> str:
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    return Path(os.path.relpath(p, out_dir)).as_posix()


def render_markdown(title: str, intro: Sequence[str], sections: Sequence[Section], out_dir: str | Path) -> str:
    """The report as Markdown; images are referenced relative to ``out_dir``.

    Returns:
        the Markdown text (not written; see :func:`write_report`).
    """
    out_dir = Path(out_dir)
    lines = [f"# {title}", ""]
    for t in intro:
        lines += [t, ""]
    for i, sec in enumerate(sections, 1):
        lines += [f"## {i}. {sec.title}", ""]
        for b in sec.blocks:
            if isinstance(b, Text):
                lines += [b.text, ""]
            elif isinstance(b, Note):
                lines += [f"> Note: {b.text}", ""]
            elif isinstance(b, Bullets):
                if b.lead:
                    lines += [b.lead, ""]
                lines += [f"- {str(item).replace(chr(10), ' ')}" for item in b.items] + [""]
            elif isinstance(b, Image):
                alt = _short(b.alt or b.caption).replace("[", "(").replace("]", ")")
                lines += [f"![{alt}]({_rel(b.path, out_dir)})", "", f"*{b.caption}*", ""]
            elif isinstance(b, Table):
                lines.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
                lines.append("|" + "|".join("---" for _ in b.header) + "|")
                for row in b.rows:
                    lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
                lines.append("")
                if b.caption:
                    lines += [b.caption, ""]
    return "\n".join(lines).rstrip() + "\n"


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; font-size: 0.95em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
.caption { font-size: 0.9em; color: #444; }
"""


def _data_uri(path: Path) -> str:
    data = Path(path).read_bytes()
    if not data.startswith(PNG_MAGIC):
        raise ReportError(f"{path} is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def render_html(title: str, intro: Sequence[str], sections: Sequence[Section], out_dir: str | Path) -> str:
    """The report as one self-contained HTML page: every image inlined as a
    ``data:image/png;base64,...`` URI, no external file, script or style sheet.

    Raises:
        ValueError: an image file is not a PNG; OSError: it cannot be read.
    """
    out_dir = Path(out_dir)
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{e(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", f"<h1>{e(title)}</h1>"]
    parts += [f"<p>{e(t)}</p>" for t in intro]
    for i, sec in enumerate(sections, 1):
        parts.append(f"<h2>{i}. {e(sec.title)}</h2>")
        for b in sec.blocks:
            if isinstance(b, Text):
                parts.append(f"<p>{e(b.text)}</p>")
            elif isinstance(b, Note):
                parts.append(f'<p class="note">Note: {e(b.text)}</p>')
            elif isinstance(b, Bullets):
                if b.lead:
                    parts.append(f"<p>{e(b.lead)}</p>")
                parts.append("<ul>" + "".join(f"<li>{e(str(item))}</li>" for item in b.items) + "</ul>")
            elif isinstance(b, Image):
                p = Path(b.path) if Path(b.path).is_absolute() else out_dir / b.path
                parts.append(f'<figure><img src="{_data_uri(p)}" alt="{e(_short(b.alt or b.caption))}">'
                             f"<figcaption>{e(b.caption)}</figcaption></figure>")
            elif isinstance(b, Table):
                parts.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in b.header)
                             + "</tr></thead><tbody>")
                for row in b.rows:
                    parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>")
                parts.append("</tbody></table>")
                if b.caption:
                    parts.append(f'<p class="caption">{e(b.caption)}</p>')
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def write_report(title: str, intro: Sequence[str], sections: Sequence[Section], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir`` (the PNGs must already be there).

    Returns:
        ``(markdown_path, html_path)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "report.md"
    page = out_dir / "report.html"
    html_text = render_html(title, intro, sections, out_dir)  # first: fails on a bad image before writing
    md.write_text(render_markdown(title, intro, sections, out_dir), encoding="utf-8")
    page.write_text(html_text, encoding="utf-8")
    return md, page


__all__ = ["Text", "Note", "Bullets", "Image", "Table", "Section", "render_markdown", "render_html", "write_report", "PNG_MAGIC"]
