"""A self-contained HTML page: inline CSS, figures embedded as PNG data URIs, no
scripts and nothing fetched, so it opens from a mail attachment or an archive."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f8f8f8; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.warning { background: #fff4e0; border-left: 4px solid #f0a000; padding: 0.4em 0.8em; }
"""


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def esc(text: object) -> str:
    return html.escape(str(text))


def table(frame: pd.DataFrame, index: bool = True) -> str:
    """An HTML table of a small frame (values already formatted or plain numbers)."""
    return frame.rename_axis(index=None).to_html(
        index=index, escape=True, border=0, na_rep="-",
        float_format=lambda v: f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}")


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
