"""A self-contained HTML page: inline CSS, figures embedded as PNG data URIs, no
scripts and nothing fetched, so it opens from a mail attachment or an archive."""

from __future__ import annotations

import base64
import html
import numbers
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # matplotlib loads where a figure is drawn, not with every page
    from matplotlib.figure import Figure

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
td.text, th.text { text-align: left; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f8f8f8; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.warning { background: #fff4e0; border-left: 4px solid #f0a000; padding: 0.4em 0.8em; }
"""


def png_bytes(fig: Figure, dpi: int | None = None) -> bytes:
    """The figure as a PNG, at the plots' resolution unless ``dpi`` says otherwise (drawn
    once: :func:`npsim.plots._common.png_bytes`)."""
    from npsim.plots._common import png_bytes as png

    return png(fig, dpi)


def esc(text: object) -> str:
    return html.escape(str(text))


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"
        return "0" if text in ("-0", "-0.0") else text
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


# a number, maybe with its unit or CI after it (an address such as 10.244.0.2 is text)
NUMBER = re.compile(r"^[-+]?\d[\d,]*(\.\d+)?(?![\d.])")


def _is_number_column(column: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(column):
        return False
    if pd.api.types.is_numeric_dtype(column):
        return True
    texts = [str(v) for v in column if v is not None and str(v) != "-"]
    return bool(texts) and all(NUMBER.match(t) for t in texts)


def table(frame: pd.DataFrame, index: bool = True) -> str:
    """An HTML table of a small frame (values already formatted or plain numbers).
    Numbers are right-aligned; text columns (names, addresses, kinds) left-aligned,
    like the first column."""
    frame = frame.rename_axis(index=None)
    kinds = ["" if _is_number_column(frame[c]) else ' class="text"' for c in frame.columns]
    head = ["<th></th>"] if index else []
    head += [f"<th{k}>{esc(c)}</th>" for c, k in zip(frame.columns, kinds, strict=True)]
    rows = []
    for label, values in zip(frame.index, frame.itertuples(index=False), strict=True):
        cells = [f"<th>{esc(label)}</th>"] if index else []
        cells += [f"<td{k}>{esc(_cell(v))}</td>" for v, k in zip(values, kinds, strict=True)]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ('<table class="dataframe"><thead><tr>' + "".join(head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def figure(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="fig-{esc(name)}"><img alt="{esc(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{esc(caption)}</figcaption>'
            "</figure>")


def page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_figures(figures: dict[str, Figure], folder: Path) -> dict[str, bytes]:
    """Each figure as ``folder/figures/<name>.png``; returns the PNG bytes by name."""
    out = folder / "figures"
    out.mkdir(exist_ok=True)
    pngs = {}
    for name, fig in figures.items():
        pngs[name] = png_bytes(fig)
        (out / f"{name}.png").write_bytes(pngs[name])
    return pngs
