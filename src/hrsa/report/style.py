"""The one style of every report figure: paper-sized, readable when printed, colour-blind aware.

Figures are drawn on `matplotlib.figure.Figure` objects (never pyplot's global state) inside
:func:`styled`, and written with :func:`save_figure` as PNG and PDF, each atomically.
Sizes are in inches at print size: a two-column paper's text width is about 6.75 in, a column
about 3.25 in; text is 6-8 pt, the smallest size still legible in print.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import textwrap
from collections.abc import Callable, Iterator
from typing import TypeVar

import matplotlib
from matplotlib.figure import Figure

from hrsa.report.output import atomic_path

TEXT_WIDTH = 6.75
"""Width of a figure spanning the page (inches)."""
COLUMN_WIDTH = 3.25
"""Width of a one-column figure (inches)."""

DPI = 300

RC = {
    "font.family": "DejaVu Sans",
    "font.size": 7,
    "axes.titlesize": 7,
    "axes.labelsize": 7,
    "xtick.labelsize": 6,
    "ytick.labelsize": 6,
    "legend.fontsize": 6,
    "legend.title_fontsize": 6,
    "figure.titlesize": 8,
    "figure.labelsize": 7,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.5,
    "ytick.major.width": 0.5,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "lines.linewidth": 1.2,
    "lines.markersize": 3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "figure.constrained_layout.use": True,
    "figure.constrained_layout.h_pad": 0.03,
    "figure.constrained_layout.w_pad": 0.03,
    "pdf.fonttype": 42,  # embed TrueType: text stays text in the PDF
    "ps.fonttype": 42,
    "savefig.dpi": DPI,
}

# Colour limits and maps of the layer-by-layer heatmaps (fixed, so panels compare across figures).
DIMENSION_WISE_CORRELATION_CMAP = "RdBu_r"
DIMENSION_WISE_CORRELATION_LIMITS = (-1.0, 1.0)
LINEAR_CKA_CMAP = "viridis"
LINEAR_CKA_LIMITS = (0.0, 1.0)

# Bars and lines: Okabe-Ito colours (distinguishable with colour-vision deficiencies).
BASE_COLOR = "#0072B2"  # blue: the base model
REASONING_COLOR = "#E69F00"  # orange: the reasoning model
K_COLORS = ("#009E73", "#CC79A7", "#000000", "#56B4E9", "#F0E442")  # one per k, in sorted order
METRIC_COLORS = {
    "diagonal_mean": "#0072B2",
    "final": "#D55E00",
    "h_inv": "#009E73",
}
SFT_BACKGROUND = "#FBE3E1"  # light red behind panels of SFT-tuned pairs (the paper's convention)
CI_ALPHA = 0.25  # opacity of confidence bands

T = TypeVar("T")


def styled(function: Callable[..., T]) -> Callable[..., T]:
    """Run a figure-building function under the report's matplotlib settings."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return function(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure of ``width`` x ``height`` inches (call inside :func:`styled`)."""
    return Figure(figsize=(width, height), layout="constrained")


def k_color(k: int, ks: list[int]) -> str:
    """The colour of the k-NN line for ``k`` among all ``ks`` drawn (stable across panels)."""
    return K_COLORS[sorted(ks).index(k) % len(K_COLORS)]


def wrap_label(label: str, width: int = 24) -> str:
    """Break a long model name over lines after ``-`` or ``_`` (hard breaks only for a piece
    longer than ``width``), so panel labels are not clipped."""
    if len(label) <= width:
        return label
    pieces = [p for p in re.findall(r"[^-_]*[-_]*", label) if p]
    lines: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(piece) > width:
            lines.append(current)
            current = ""
        current += piece
    lines.append(current)
    return "\n".join(part for line in lines for part in textwrap.wrap(line, width) or [""])


def same_line_count(texts: list[str], at_top: bool = True) -> list[str]:
    """Pad multi-line texts with blank lines so all have as many lines (equal panel sizes)."""
    most = max((t.count("\n") for t in texts), default=0)
    pad = [most - t.count("\n") for t in texts]
    return ["\n" * p + t if at_top else t + "\n" * p for t, p in zip(texts, pad, strict=True)]


@contextlib.contextmanager
def _closing(fig: Figure) -> Iterator[Figure]:
    try:
        yield fig
    finally:
        fig.clear()


def save_figure(fig: Figure, png: str | os.PathLike, pdf: str | os.PathLike | None = None) -> None:
    """Write ``fig`` as PNG (and PDF), each to a temporary sibling renamed into place.

    ``bbox_inches="tight"`` with a small pad is a safety net against clipped labels.
    """
    with matplotlib.rc_context(RC), _closing(fig):
        for path, fmt in ((png, "png"), (pdf, "pdf")):
            if path is None:
                continue
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight", pad_inches=0.03)
