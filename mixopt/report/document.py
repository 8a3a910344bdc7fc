"""The report document: sections of figures and tables, written as one offline HTML file.

The HTML is self-contained: figures are inline SVG (text kept as text, so it can be
searched and copied), the CSS is embedded, there is no script except one inert
``application/json`` block (``id="mixopt-data"``) holding every plotted series, and nothing
is fetched from the network. :meth:`Report.write_figures` writes the same figures as PNG or
SVG files for slides.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from mixopt._files import atomic_path, write_text
from mixopt._json import jsonable
from mixopt.errors import SchemaError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

FIGURE_FORMATS = ("png", "svg")
#: Output formats of a report: one HTML file, or a folder of figures.
OUTPUT_FORMATS = ("html", *FIGURE_FORMATS)


@dataclass
class FigureItem:
    """One figure: ``key`` names its file and its SVG ids; ``data`` is what it plots."""

    key: str
    title: str
    figure: Figure
    data: Mapping[str, Any]
    caption: str = ""


@dataclass
class TableItem:
    """One table (a polars frame); ``percent`` columns are shown as percentages."""

    key: str
    title: str
    frame: pl.DataFrame
    caption: str = ""
    percent: Sequence[str] = ()
    wrap: bool = False  # let long text cells wrap (settings, paths)


@dataclass
class Note:
    """A paragraph (plain text; ``kind`` ``info`` or ``warn``)."""

    text: str
    kind: str = "info"


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    items: list[FigureItem | TableItem | Note] = field(default_factory=list)


@dataclass
class Report:
    """A rendered report: sections in order plus provenance."""

    title: str
    subtitle: str
    sections: list[Section]
    provenance: Mapping[str, Any]

    @property
    def figures(self) -> dict[str, Figure]:
        """Every figure by key (``fit_curves``, ``score_maps``, ``parity``, ...)."""
        return {it.key: it.figure for s in self.sections for it in s.items if isinstance(it, FigureItem)}

    def data(self) -> dict[str, Any]:
        """Every plotted series (what the HTML embeds as JSON)."""
        from mixopt import __version__

        return {
            "mixopt_report": 1,
            "mixopt_version": __version__,
            "title": self.title,
            "sections": [s.key for s in self.sections],
            "figures": {it.key: it.data for s in self.sections for it in s.items if isinstance(it, FigureItem)},
            "provenance": self.provenance,
        }

    # -- output ----------------------------------------------------------------------------
    def to_html(self) -> str:
        """The whole report as one HTML document (string)."""
        toc = "".join(f'<li><a href="#{s.key}">{html.escape(s.title)}</a></li>' for s in self.sections)
        body = "\n".join(_section_html(s) for s in self.sections)
        data = json.dumps(jsonable(self.data()), separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<meta name=\"generator\" content=\"mixopt {html.escape(str(self.provenance.get('mixopt_version', '')))}\">\n"
            f"<title>{html.escape(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<header><h1>{html.escape(self.title)}</h1><p class=\"sub\">{html.escape(self.subtitle)}</p>"
            f"<nav><ol>{toc}</ol></nav></header>\n<main>\n{body}\n</main>\n"
            f"<footer>Written by mixopt {html.escape(str(self.provenance.get('mixopt_version', '')))} "
            f"on {html.escape(str(self.provenance.get('generated_at', '')))}. Self-contained: no network access needed.</footer>\n"
            f"<script type=\"application/json\" id=\"mixopt-data\">{data}</script>\n</body>\n</html>\n"
        )

    def write_html(self, path: str | Path) -> Path:
        """Write the HTML report to ``path`` (parent folders created)."""
        return write_text(path, self.to_html(), what="report")  # whole or not at all

    def write_figures(self, folder: str | Path, format: str = "png") -> list[Path]:
        """Write every figure as ``<folder>/<key>.<format>`` (``png`` or ``svg``); returns the paths."""
        if format not in FIGURE_FORMATS:
            raise SchemaError(f"Figure format must be one of {list(FIGURE_FORMATS)}, got {format!r}.")
        d = Path(folder)
        if d.exists() and not d.is_dir():
            raise SchemaError(f"{d} is a file; figures need a folder (e.g. --out out/figures/).")
        d.mkdir(parents=True, exist_ok=True)
        written = []
        for key, fig in self.figures.items():
            p = d / f"{key}.{format}"
            if format == "svg":
                write_text(p, figure_svg(fig, key, inline=False), what="figure")
            else:
                from mixopt.report.figures import style

                with style(), atomic_path(p, what="figure") as tmp:
                    fig.savefig(tmp, format="png", dpi=150, metadata={"Software": None})
            written.append(p)
        return written


def figure_svg(fig: Figure, key: str, *, inline: bool = True) -> str:
    """A figure as SVG text; ``inline`` drops the XML prolog and makes it scale with the page."""
    import matplotlib

    from mixopt.report.figures import style

    buf = io.StringIO()
    with style(), matplotlib.rc_context({"svg.hashsalt": f"mixopt-{key}", "svg.id": f"svg-{key}"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    if not inline:
        return svg
    svg = svg[svg.index("<svg"):]
    # matplotlib numbers its ids per file (figure_1, axes_1, ...): prefix them (and every reference
    # to them) with the figure key so that several SVGs share one HTML document without clashes
    pre = f"{key}-"
    svg = re.sub(r'(\s)id="([^"]+)"', lambda m: f'{m.group(1)}id="{pre}{m.group(2)}"', svg)
    svg = re.sub(r'((?:xlink:)?href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{pre}{m.group(2)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{pre}{m.group(1)})", svg)
    m = re.match(r'<svg([^>]*?)\swidth="([\d.]+)pt"\s+height="([\d.]+)pt"', svg)
    if m:
        w = float(m.group(2))
        svg = svg[: m.start()] + f'<svg{m.group(1)} width="100%" style="max-width:{w * 4 / 3:.0f}px;height:auto"' + svg[m.end():]
    return svg


def _section_html(s: Section) -> str:
    parts = [f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>']
    if s.intro:
        parts.append(f"<p class=\"intro\">{html.escape(s.intro)}</p>")
    for it in s.items:
        if isinstance(it, FigureItem):
            parts.append(
                f'<figure id="fig-{it.key}" data-figure="{it.key}"><h3>{html.escape(it.title)}</h3>{figure_svg(it.figure, it.key)}'
                + (f"<figcaption>{html.escape(it.caption)}</figcaption>" if it.caption else "") + "</figure>"
            )
        elif isinstance(it, TableItem):
            parts.append(_table_html(it))
        else:
            parts.append(f'<p class="note {it.kind}">{html.escape(it.text)}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _cell(v: Any, percent: bool) -> str:
    from mixopt.report.figures import fmt

    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:.1%}" if percent else fmt(v)
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    return html.escape(str(v))


def _table_html(t: TableItem) -> str:
    f = t.frame
    head = "".join(f"<th>{html.escape(c)}</th>" for c in f.columns)
    rows = []
    for r in f.iter_rows():
        cells = []
        for c, v in zip(f.columns, r, strict=True):
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            cells.append(f'<td class="{"num" if num else "txt"}">{_cell(v, c in t.percent)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<p class=\"caption\">{html.escape(t.caption)}</p>" if t.caption else ""
    return (f'<div class="table" id="tab-{t.key}" data-table="{t.key}"><h3>{html.escape(t.title)}</h3>'
            f'<div class="scroll"><table{" class=wrap" if t.wrap else ""}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{cap}</div>')


_CSS = """
:root{--ink:#1d2733;--muted:#5b6675;--line:#dde3ea;--accent:#0072B2;--bg:#fbfcfd}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:var(--bg)}
header{background:#fff;border-bottom:1px solid var(--line);padding:20px 32px 10px}
header h1{margin:0;font-size:24px}
.sub{margin:4px 0 8px;color:var(--muted)}
nav ol{display:flex;flex-wrap:wrap;gap:4px 18px;margin:6px 0 0;padding:0;list-style:none;font-size:14px}
nav a{color:var(--accent);text-decoration:none}
main{max-width:1120px;margin:0 auto;padding:8px 32px 24px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;margin:18px 0;padding:6px 22px 16px}
h2{font-size:19px;margin:14px 0 6px;border-bottom:2px solid var(--accent);display:inline-block;padding-bottom:2px}
h3{font-size:15px;margin:14px 0 6px}
.intro{color:var(--muted);margin:4px 0 10px;max-width:900px}
figure{margin:10px 0 18px}
figure svg{display:block}
figcaption,.caption{color:var(--muted);font-size:13px;margin-top:4px;max-width:900px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;margin:4px 0}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{background:#f2f5f8;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.wrap td.txt{white-space:normal;overflow-wrap:anywhere;max-width:860px}
tbody tr:nth-child(even){background:#fafbfc}
.note{padding:8px 12px;border-radius:6px;background:#eef5fb;border-left:4px solid var(--accent);font-size:14px}
.note.warn{background:#fff6e5;border-left-color:#e69f00}
footer{color:var(--muted);font-size:12px;text-align:center;padding:10px 0 24px}
@media print{body{background:#fff}section{border:none;page-break-inside:avoid}header nav{display:none}}
"""


__all__ = ["FIGURE_FORMATS", "FigureItem", "Note", "Report", "Section", "TableItem", "figure_svg"]
