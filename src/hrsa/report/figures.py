"""The paper's figures from tidy result frames (see :mod:`hrsa.report.collect`).

Every builder returns a :class:`matplotlib.figure.Figure` (write it with
:func:`hrsa.report.style.save_figure`):

- :func:`figure3`: layer-by-layer heatmaps of dimension-wise correlation (RdBu_r, -1..1) and
  linear CKA (viridis, 0..1); rows LLM vs embedding model, columns the chosen SFT and RLVR pairs;
- :func:`figure4`: cross-model linear probe accuracy, train/dev/test, base vs reasoning model;
- :func:`figure5`: training dynamics of one pair: headline numbers against the training step;
- :func:`layer_grid`: Figures 6-9, one heatmap per pair and dataset;
- :func:`knn_grid`: Figures 10-11, k-NN overlap over layers, one line per k;
- :func:`probe_grid`: Figures 12-13, probe bars for every pair;
- :func:`pair_overview`: one pair's layer metrics for every stage and dataset.

Grid figures put SFT-tuned pairs on a light red background, as the paper does.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Collection, Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from hrsa.report import style
from hrsa.report.collect import (
    STAGE_NAMES,
    PairInfo,
    dataset_label,
    diagonal_curve,
    layer_matrix,
    ordered,
    pair_info,
    probe_accuracy,
    select,
    stage_step,
)

HEATMAPS = {
    "dimension_wise_correlation": (
        "Dimension-wise correlation",
        style.DIMENSION_WISE_CORRELATION_CMAP,
        style.DIMENSION_WISE_CORRELATION_LIMITS,
    ),
    "linear_cka": ("Linear CKA", style.LINEAR_CKA_CMAP, style.LINEAR_CKA_LIMITS),
}
"""metric -> (display name, colour map, fixed colour limits)."""

FOOTER_HEIGHT = 0.42  # inches reserved under a grid for its colour bar or legend
BLOCK_TITLE_HEIGHT = 0.22  # inches of a dataset block's title
GRID_TITLE_HEIGHT = 0.45  # inches of a grid's title and shared x label
SFT_LABEL = "SFT-tuned pair"
PROBE_LABELS = ("base model (probe fitted here)", "reasoning model (same probe)")


# --------------------------------------------------------------------------- panels


def _colormap(name: str):
    return matplotlib.colormaps[name].with_extremes(bad="#D9D9D9")


#: what a panel says when its metric was left out by hrsa.metrics (rather than missing data)
NOT_COMPUTED = "not computed\n(hrsa.metrics)"


def _empty_text(metric: str, not_computed: Collection[str]) -> str:
    return NOT_COMPUTED if metric in not_computed else "no data"


def _no_data(ax: Axes, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def heatmap(ax: Axes, matrix: np.ndarray, metric: str, not_computed: Collection[str] = ()):
    """Draw a base-layer (y) x reasoning-layer (x) matrix with the metric's fixed colour limits.

    Layer 0 (the embedding output) is at the bottom left; missing cells are grey. An empty
    matrix says "not computed" when ``metric`` is in ``not_computed`` (left out by hrsa.metrics),
    else "no data".
    """
    _, cmap, (low, high) = HEATMAPS[metric]
    for spine in ax.spines.values():
        spine.set_visible(True)
    if matrix.size == 0:
        _no_data(ax, _empty_text(metric, not_computed))
        return None
    n_base, n_reasoning = matrix.shape
    image = ax.imshow(
        np.ma.masked_invalid(matrix),
        cmap=_colormap(cmap),
        vmin=low,
        vmax=high,
        origin="lower",
        extent=(-0.5, n_reasoning - 0.5, -0.5, n_base - 0.5),
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_box_aspect(1)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    return image


def knn_curves(
    ax: Axes,
    metrics: pd.DataFrame,
    pair: str,
    stage: str,
    dataset: str,
    not_computed: Collection[str] = (),
) -> list[int]:
    """k-NN overlap of layer i vs layer i, one line per k (bands = intervals, dotted = null).

    Returns the k values drawn.
    """
    rows = select(metrics, metric="knn_overlap", pair=pair, stage=stage, dataset=dataset)
    ks = sorted(int(k) for k in rows["k"].dropna().unique())
    for k in ks:
        color = style.k_color(k, ks)
        curve = diagonal_curve(metrics, "knn_overlap", pair, stage, dataset, k)
        layers = curve["layer"].to_numpy(dtype=float)
        ax.plot(layers, curve["value"], color=color, label=f"k={k}", marker="o", markersize=1.5)
        if curve[["ci_low", "ci_high"]].notna().all(axis=None):
            ax.fill_between(
                layers, curve["ci_low"], curve["ci_high"], color=color, alpha=style.CI_ALPHA, lw=0
            )
        null = diagonal_curve(metrics, "knn_overlap_null", pair, stage, dataset, k)
        if not null.empty:
            ax.plot(null["layer"].to_numpy(dtype=float), null["value"], color=color, ls=":", lw=0.8)
    if not ks:
        _no_data(ax, _empty_text("knn_overlap", not_computed))
        return ks
    ax.set_ylim(0, 1)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    ax.grid(axis="y", lw=0.3, color="0.85")
    return ks


def probe_bars(ax: Axes, accuracy: pd.DataFrame) -> None:
    """Accuracy by split: left bar the base model (where the probe was fitted), right bar the
    reasoning model; above each pair of bars Δ = base − reasoning accuracy."""
    if accuracy.empty or accuracy.isna().all(axis=None):
        _no_data(ax)
        return
    x = np.arange(len(accuracy.index))
    width = 0.38
    base = accuracy["base"].to_numpy(dtype=float)
    reasoning = accuracy["reasoning"].to_numpy(dtype=float)
    ax.bar(x - width / 2, base, width, color=style.BASE_COLOR, label="base model")
    ax.bar(x + width / 2, reasoning, width, color=style.REASONING_COLOR, label="reasoning model")
    for i in range(len(x)):
        if math.isnan(base[i]) or math.isnan(reasoning[i]):
            continue
        ax.text(
            x[i],
            max(base[i], reasoning[i]) + 0.02,
            f"Δ={base[i] - reasoning[i]:.3f}",
            ha="center",
            va="bottom",
            fontsize=5,
        )
    ax.set_xticks(x, list(accuracy.index))
    ax.set_ylim(0, 1.12)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.grid(axis="y", lw=0.3, color="0.85")
    ax.set_axisbelow(True)


def _row_label(ax: Axes, text: str, offset: float = 26) -> None:
    """A bold row name left of an axes' y label (kept inside the layout)."""
    ax.annotate(
        text,
        xy=(0, 0.5),
        xycoords="axes fraction",
        xytext=(-offset, 0),
        textcoords="offset points",
        ha="right",
        va="center",
        rotation=90,
        fontweight="bold",
    )


def _colorbar(container: Figure | SubFigure, metric: str, cax: Axes | None = None, **kw):
    name, cmap, (low, high) = HEATMAPS[metric]
    mappable = ScalarMappable(norm=Normalize(low, high), cmap=_colormap(cmap))
    bar = container.colorbar(mappable, cax=cax, label=name, **kw)
    bar.set_ticks(np.linspace(low, high, 5))
    bar.outline.set_linewidth(0.4)
    return bar


# --------------------------------------------------------------------------- Figure 3


def _title_chars(panel_width: float) -> int:
    """How many 7 pt characters fit over a panel ``panel_width`` inches wide."""
    return max(12, int(panel_width * 15))


def _pair_title(pair: PairInfo, stage: str, chars: int) -> str:
    """The pair's short name, broken before ``vs`` and then at hyphens when too long."""
    name = pair.short_name(stage)
    base, _, reasoning = name.partition(" vs ")
    if len(name) <= chars or not reasoning:
        return style.wrap_label(name, chars)
    return f"{style.wrap_label(base, chars)}\n{style.wrap_label('vs ' + reasoning, chars)}"


@style.styled
def figure3(
    metrics: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    pair_keys: Sequence[str],
    dataset: str,
    stages: Sequence[str] = ("backbone", "emb"),
    not_computed: Collection[str] = (),
) -> Figure:
    """Figure 3: heatmaps of dimension-wise correlation (left) and linear CKA (right).

    Rows are the stages (LLM, embedding model), columns the pairs (paper: one SFT, one RLVR).
    ``not_computed``: the metrics hrsa.metrics left out (their panels say so).
    """
    chosen = ordered({k: pair_info(pairs, k) for k in pair_keys})
    n_rows, n_cols = len(stages), max(len(chosen), 1)
    chars = _title_chars(style.TEXT_WIDTH / (2 * n_cols))
    titles = [
        style.same_line_count(
            [(f"{p.family}\n" if r == 0 else "") + _pair_title(p, stage, chars) for p in chosen]
        )
        for r, stage in enumerate(stages)
    ]
    extra_lines = sum(max((t.count("\n") for t in row), default=0) for row in titles)
    fig = style.new_figure(style.TEXT_WIDTH, 0.9 + 1.45 * n_rows + 0.12 * extra_lines)
    blocks = fig.subfigures(1, 2, wspace=0.0)
    for b, (block, metric) in enumerate(zip(blocks, HEATMAPS, strict=True)):
        axes = block.subplots(n_rows, n_cols, squeeze=False)
        for r, stage in enumerate(stages):
            for c, pair in enumerate(chosen):
                ax = axes[r, c]
                matrix = layer_matrix(metrics, metric, pair.key, stage, dataset)
                heatmap(ax, matrix, metric, not_computed)
                ax.set_title(titles[r][c])
                if c == 0:
                    ax.set_ylabel("base layer")
                    if b == 0:
                        _row_label(ax, STAGE_NAMES.get(stage, stage))
                if r == n_rows - 1:
                    ax.set_xlabel("reasoning layer")
        _colorbar(block, metric, ax=axes, location="bottom", shrink=0.8, aspect=25, pad=0.02)
        block.suptitle(HEATMAPS[metric][0], fontweight="bold")
    return fig


# --------------------------------------------------------------------------- Figure 4


def _probe_legend(container: Figure | SubFigure, **kw) -> None:
    handles = [
        Patch(color=style.BASE_COLOR, label=PROBE_LABELS[0]),
        Patch(color=style.REASONING_COLOR, label=PROBE_LABELS[1]),
    ]
    container.legend(handles=handles, ncols=2, **kw)


@style.styled
def figure4(
    probes: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    pair_keys: Sequence[str],
    dataset: str,
    stages: Sequence[str] = ("backbone", "emb"),
) -> Figure:
    """Figure 4: cross-model probe accuracy per pair (one block per pair, one panel per stage)."""
    chosen = ordered({k: pair_info(pairs, k) for k in pair_keys}) or [pair_info(pairs, "?")]
    chars = _title_chars(style.TEXT_WIDTH / (len(chosen) * len(stages))) - 4
    titles = style.same_line_count(
        [
            f"({letter}) {_pair_title(p, s, chars)}"
            for letter, (p, s) in zip(
                "abcdefghijklmnopqrstuvwxyz", [(p, s) for p in chosen for s in stages], strict=False
            )
        ]
    )
    height = 2.2 + 0.12 * max(t.count("\n") for t in titles)
    fig = style.new_figure(style.TEXT_WIDTH, height)
    body, footer = fig.subfigures(2, 1, height_ratios=[height - 0.3, 0.3])
    titles = iter(titles)
    blocks = np.atleast_1d(body.subfigures(1, len(chosen), wspace=0.0))
    for block, pair in zip(blocks, chosen, strict=True):
        if pair.is_sft:
            block.set_facecolor(style.SFT_BACKGROUND)
        block.suptitle(pair.family, fontweight="bold")
        axes = np.atleast_1d(block.subplots(1, len(stages), sharey=True))
        for ax, stage in zip(axes, stages, strict=True):
            probe_bars(ax, probe_accuracy(probes, pair.key, stage, dataset))
            ax.set_title(next(titles))
        axes[0].set_ylabel("accuracy")
    _probe_legend(footer, loc="center")
    return fig


# --------------------------------------------------------------------------- Figure 5


DYNAMICS_PANELS = (
    ("Linear CKA", ("linear_cka_diagonal_mean", "linear_cka_final")),
    (
        "Dimension-wise correlation",
        ("dimension_wise_correlation_diagonal_mean", "dimension_wise_correlation_final"),
    ),
    ("H_inv of O* (final layer)", ("h_inv_final",)),
    ("k-NN overlap (layer mean)", ("knn_overlap_mean",)),
)
#: the hrsa.metrics name behind each Figure 5 panel
DYNAMICS_PANEL_METRICS = (
    "linear_cka",
    "dimension_wise_correlation",
    "procrustes",
    "knn_overlap",
)


def dynamics_frame(headlines: pd.DataFrame, pair: str, dataset: str) -> pd.DataFrame:
    """Headline numbers of ``pair`` on ``dataset`` with a ``step`` column, sorted by step.

    Stages ``step{N}`` give step N; ``backbone`` stands for step 0 when no ``step0`` exists.
    """
    rows = select(headlines, pair=pair, dataset=dataset).copy()
    rows["step"] = [stage_step(s) for s in rows["stage"]]
    rows = rows[rows["step"].notna()]
    if (rows["stage"] == "step0").any():
        rows = rows[rows["stage"] != "backbone"]
    rows["step"] = rows["step"].astype(int)
    return rows.sort_values(["quantity", "k", "step"]).reset_index(drop=True)


def _line(ax: Axes, rows: pd.DataFrame, color: str, ls: str = "-") -> None:
    if rows.empty:
        return
    steps = rows["step"].to_numpy(dtype=float)
    ax.plot(steps, rows["value"], color=color, ls=ls, marker="o", markersize=2)
    if rows[["ci_low", "ci_high"]].notna().all(axis=None):
        ax.fill_between(
            steps, rows["ci_low"], rows["ci_high"], color=color, alpha=style.CI_ALPHA, lw=0
        )


@style.styled
def figure5(
    headlines: pd.DataFrame,
    pair: PairInfo,
    datasets: Sequence[str],
    dataset_labels: Mapping[str, str] | None = None,
    not_computed: Collection[str] = (),
) -> Figure:
    """Figure 5: HRSA between the two models of ``pair`` at every training snapshot.

    One row per dataset; panels: linear CKA and dimension-wise correlation (solid = mean over
    layers i vs i, dashed = final layer), H_inv of the final layer and the mean k-NN overlap (one
    line per k), each with its interval band when the engine computed one.
    """
    n_rows = max(len(datasets), 1)
    fig = style.new_figure(style.TEXT_WIDTH, 0.35 + 1.75 * n_rows + FOOTER_HEIGHT)
    body, footer = fig.subfigures(2, 1, height_ratios=[0.35 + 1.75 * n_rows, FOOTER_HEIGHT])
    axes = body.subplots(n_rows, len(DYNAMICS_PANELS), squeeze=False)
    all_ks: set[int] = set()
    for r, dataset in enumerate(datasets):
        frame = dynamics_frame(headlines, pair.key, dataset)
        ks = sorted(
            int(k)
            for k in frame.loc[frame["quantity"] == "knn_overlap_mean", "k"].dropna().unique()
        )
        all_ks.update(ks)
        for c, (title, quantities) in enumerate(DYNAMICS_PANELS):
            ax = axes[r, c]
            for quantity in quantities:
                rows = frame[frame["quantity"] == quantity]
                if quantity == "knn_overlap_mean":
                    for k in ks:
                        _line(ax, rows[rows["k"] == k], style.k_color(k, ks))
                elif quantity.endswith("_final"):
                    _line(ax, rows, style.METRIC_COLORS["final"], ls="--")
                else:
                    _line(ax, rows, style.METRIC_COLORS["diagonal_mean"])
            if not ax.lines:
                _no_data(ax, _empty_text(DYNAMICS_PANEL_METRICS[c], not_computed))
            ax.set_title(title if r == 0 else "")
            ax.grid(lw=0.3, color="0.85")
            steps = sorted(frame["step"].unique())
            if 1 < len(steps) <= 6:
                ax.set_xticks(steps)
            else:
                ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            if c in (0, 2, 3) and ax.lines:
                ax.set_ylim(0, 1.02)
            if r == n_rows - 1:
                ax.set_xlabel("training step")
        axes[r, 0].set_ylabel(dataset_label(dataset, dataset_labels))
    body.suptitle(
        f"Training dynamics: {pair.short_name('emb')} (step 0 = LLM backbones)", fontweight="bold"
    )
    handles = [
        Line2D(
            [], [], color=style.METRIC_COLORS["diagonal_mean"], label="mean over layers (i vs i)"
        ),
        Line2D([], [], color=style.METRIC_COLORS["final"], ls="--", label="final layer"),
    ] + [
        Line2D([], [], color=style.k_color(k, sorted(all_ks)), label=f"k-NN, k={k}")
        for k in sorted(all_ks)
    ]
    footer.legend(handles=handles, loc="center", ncols=len(handles))
    return fig


# --------------------------------------------------------------------------- Figures 6-13


def _grid(
    blocks: Sequence[tuple[str, list[PairInfo]]],
    panel_height: float,
    n_cols: int,
    legend_labels: Sequence[str] = (),
    panel_width: float = 1.6,
    footer_extra: float = 0.0,
) -> tuple[Figure, SubFigure, SubFigure, list[list[tuple[PairInfo, Axes]]], int]:
    """A figure of dataset blocks, each a grid of one-panel subfigures (SFT ones tinted red).

    The figure is as wide as its columns need (at most the text width). Returns the figure, its
    body (for axis labels), its footer (for the legend or colour bar), per block the (pair, axes)
    of every panel, and how many columns the footer legend with ``legend_labels`` fits in.
    """
    n_cols = max(1, min(n_cols, max((len(p) for _, p in blocks), default=1)))
    width = min(style.TEXT_WIDTH, max(style.COLUMN_WIDTH, 0.5 + n_cols * panel_width))
    legend_cols = _legend_columns(legend_labels, width)
    n_legend_rows = math.ceil(len(legend_labels) / legend_cols) if legend_labels else 1
    footer_height = FOOTER_HEIGHT + 0.14 * (n_legend_rows - 1) + footer_extra
    heights = [
        BLOCK_TITLE_HEIGHT + panel_height * math.ceil(max(len(p), 1) / n_cols) for _, p in blocks
    ]
    body_height = GRID_TITLE_HEIGHT + (sum(heights) if heights else panel_height)
    fig = style.new_figure(width, body_height + footer_height)
    body, footer = fig.subfigures(2, 1, height_ratios=[body_height, footer_height])
    block_figs = (
        np.atleast_1d(body.subfigures(len(blocks), 1, height_ratios=heights)) if blocks else []
    )
    panels: list[list[tuple[PairInfo, Axes]]] = []
    for block_fig, (title, block_pairs) in zip(block_figs, blocks, strict=True):
        block_fig.suptitle(title, fontweight="bold")
        n_rows = math.ceil(max(len(block_pairs), 1) / n_cols)
        cells = np.atleast_2d(block_fig.subfigures(n_rows, n_cols, wspace=0.0, hspace=0.0))
        mine = []
        for i, pair in enumerate(block_pairs):
            cell = cells[i // n_cols, i % n_cols]
            if pair.is_sft:
                cell.set_facecolor(style.SFT_BACKGROUND)
            mine.append((pair, cell.add_subplot()))
        if not block_pairs:
            _no_data(cells[0, 0].add_subplot())
        panels.append(mine)
    return fig, body, footer, panels, legend_cols


def _panel_titles(drawn: Sequence[tuple[str, PairInfo, Axes]], stage: str) -> list[str]:
    """``base`` over ``vs reasoning``, wrapped, padded to the same number of lines."""
    titles = []
    for _, pair, _ in drawn:
        base, reasoning = pair.model_labels(stage)
        titles.append(f"{style.wrap_label(base, 25)}\n{style.wrap_label('vs ' + reasoning, 25)}")
    return style.same_line_count(titles)


def _sft_patch() -> Patch:
    return Patch(facecolor=style.SFT_BACKGROUND, edgecolor="0.6", lw=0.4, label=SFT_LABEL)


def _legend_columns(labels: Sequence[str], width: float) -> int:
    """How many legend columns of these labels fit in ``width`` inches (6 pt text)."""
    if not labels:
        return 1
    entry = 0.35 + 0.05 * max(len(label) for label in labels)
    return max(1, min(len(labels), int((width - 0.1) // entry)))


def _blocks(
    frame: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    stage: str,
    datasets: Sequence[str],
    dataset_labels: Mapping[str, str] | None,
) -> list[tuple[str, list[PairInfo]]]:
    blocks = []
    for dataset in datasets:
        here = frame[(frame["stage"] == stage) & (frame["dataset"] == dataset)]
        keys = [k for k in pairs if k in set(here["pair"])]
        keys += [k for k in dict.fromkeys(here["pair"]) if k not in pairs]
        blocks.append(
            (
                f"Dataset: {dataset_label(dataset, dataset_labels)}",
                ordered({k: pair_info(pairs, k) for k in keys}),
            )
        )
    return blocks


def _grid_title(body: SubFigure, what: str, stage: str) -> None:
    """``what`` and the stage as the grid's bold title, wrapped to the figure's width."""
    models = "LLMs" if stage == "backbone" else "embedding models"
    width = body.get_figure(root=True).get_size_inches()[0]
    title = f"{what}: base vs reasoning {models}"
    body.suptitle(textwrap.fill(title, int(width * 11)), fontweight="bold")


@style.styled
def layer_grid(
    metrics: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    metric: str,
    stage: str,
    datasets: Sequence[str],
    dataset_labels: Mapping[str, str] | None = None,
    n_cols: int = 4,
) -> Figure:
    """Figures 6-9: ``metric`` heatmaps (dimension-wise correlation or linear CKA) of every pair,
    one block per dataset; each panel's y label names the base model, x label the reasoning one."""
    blocks = _blocks(metrics[metrics["metric"] == metric], pairs, stage, datasets, dataset_labels)
    fig, body, footer, panels, _ = _grid(blocks, panel_height=1.75, n_cols=n_cols, footer_extra=0.2)
    drawn = [
        (dataset, pair, ax)
        for dataset, block in zip(datasets, panels, strict=True)
        for pair, ax in block
    ]
    bases = style.same_line_count(
        [style.wrap_label(p.model_labels(stage)[0], 22) for _, p, _ in drawn]
    )
    reasonings = style.same_line_count(
        [style.wrap_label(p.model_labels(stage)[1], 22) for _, p, _ in drawn], at_top=False
    )
    for (dataset, pair, ax), base, reasoning in zip(drawn, bases, reasonings, strict=True):
        heatmap(ax, layer_matrix(metrics, metric, pair.key, stage, dataset), metric)
        ax.set_ylabel(base, fontsize=5.5)
        ax.set_xlabel(reasoning, fontsize=5.5)
    _grid_title(body, HEATMAPS[metric][0], stage)
    body.supylabel("base layer (panel y label: base model)")
    body.supxlabel("reasoning layer (panel x label: reasoning model)")
    grid = footer.add_gridspec(2, 3, width_ratios=[0.15, 0.7, 0.15], height_ratios=[1, 0.7])
    _colorbar(footer, metric, cax=footer.add_subplot(grid[0, 1]), orientation="horizontal")
    legend_ax = footer.add_subplot(grid[1, :])
    legend_ax.axis("off")
    legend_ax.legend(handles=[_sft_patch()], loc="center")
    return fig


@style.styled
def knn_grid(
    metrics: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    stage: str,
    datasets: Sequence[str],
    dataset_labels: Mapping[str, str] | None = None,
    n_cols: int = 4,
) -> Figure:
    """Figures 10-11: k-NN overlap of layer i vs layer i for every pair, one line per k."""
    knn = metrics[metrics["metric"] == "knn_overlap"]
    blocks = _blocks(knn, pairs, stage, datasets, dataset_labels)
    ks = sorted(int(k) for k in knn["k"].dropna().unique())
    has_null = not select(metrics, metric="knn_overlap_null").empty
    fig, body, footer, panels, legend_cols = _grid(
        blocks,
        panel_height=1.6,
        n_cols=n_cols,
        legend_labels=[f"k={k}" for k in ks] + ["null baseline"] * has_null + [SFT_LABEL],
    )
    drawn = [
        (dataset, pair, ax)
        for dataset, block in zip(datasets, panels, strict=True)
        for pair, ax in block
    ]
    for (dataset, pair, ax), title in zip(drawn, _panel_titles(drawn, stage), strict=True):
        knn_curves(ax, metrics, pair.key, stage, dataset)
        ax.set_title(title, fontsize=5.5)
    _grid_title(body, "k-NN overlap", stage)
    body.supylabel("mean overlap (Jaccard)")
    body.supxlabel("layer (i vs i)")
    handles = [Line2D([], [], color=style.k_color(k, ks), label=f"k={k}") for k in ks]
    if has_null:
        handles.append(Line2D([], [], color="0.3", ls=":", lw=0.8, label="null baseline"))
    footer.legend(handles=[*handles, _sft_patch()], loc="center", ncols=legend_cols)
    return fig


@style.styled
def probe_grid(
    probes: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    stage: str,
    datasets: Sequence[str],
    dataset_labels: Mapping[str, str] | None = None,
    n_cols: int = 4,
) -> Figure:
    """Figures 12-13: cross-model probe accuracy of every pair (train/dev/test)."""
    blocks = _blocks(probes, pairs, stage, datasets, dataset_labels)
    fig, body, footer, panels, legend_cols = _grid(
        blocks, panel_height=1.55, n_cols=n_cols, legend_labels=[*PROBE_LABELS, SFT_LABEL]
    )
    drawn = [
        (dataset, pair, ax)
        for dataset, block in zip(datasets, panels, strict=True)
        for pair, ax in block
    ]
    for (dataset, pair, ax), title in zip(drawn, _panel_titles(drawn, stage), strict=True):
        probe_bars(ax, probe_accuracy(probes, pair.key, stage, dataset))
        ax.set_title(title, fontsize=5.5)
    _grid_title(body, "Cross-model linear probe", stage)
    body.supylabel("accuracy")
    body.supxlabel("split")
    handles = [
        Patch(color=style.BASE_COLOR, label=PROBE_LABELS[0]),
        Patch(color=style.REASONING_COLOR, label=PROBE_LABELS[1]),
        _sft_patch(),
    ]
    footer.legend(handles=handles, loc="center", ncols=legend_cols)
    return fig


# --------------------------------------------------------------------------- one pair


@style.styled
def pair_overview(
    metrics: pd.DataFrame,
    pair: PairInfo,
    stages: Sequence[str],
    datasets: Sequence[str],
    dataset_labels: Mapping[str, str] | None = None,
    not_computed: Collection[str] = (),
) -> Figure:
    """One pair on one page: dimension-wise correlation, linear CKA and k-NN overlap for every
    stage (rows) and dataset; ``not_computed`` as in :func:`figure3`."""
    rows = [
        (stage, dataset)
        for dataset in datasets
        for stage in stages
        if not select(metrics, pair=pair.key, stage=stage, dataset=dataset).empty
    ] or [(stages[0] if stages else "backbone", datasets[0] if datasets else "")]
    fig = style.new_figure(style.TEXT_WIDTH, 0.35 + 1.85 * len(rows) + 0.55)
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for r, (stage, dataset) in enumerate(rows):
        for c, metric in enumerate(HEATMAPS):
            ax = axes[r, c]
            matrix = layer_matrix(metrics, metric, pair.key, stage, dataset)
            heatmap(ax, matrix, metric, not_computed)
            ax.set_ylabel("base layer")
            if r == len(rows) - 1:
                ax.set_xlabel("reasoning layer")
            if r == 0:
                ax.set_title(HEATMAPS[metric][0])
        ks = knn_curves(axes[r, 2], metrics, pair.key, stage, dataset, not_computed)
        axes[r, 2].set_ylabel("k-NN overlap")
        if r == 0:
            axes[r, 2].set_title("k-NN overlap (layer i vs i)")
            if ks:
                axes[r, 2].legend(loc="upper right", ncols=len(ks), handlelength=1.2)
        if r == len(rows) - 1:
            axes[r, 2].set_xlabel("layer")
        stage_name = STAGE_NAMES.get(stage, stage)
        _row_label(axes[r, 0], f"{stage_name}\n{dataset_label(dataset, dataset_labels)}", offset=24)
    for c, metric in enumerate(HEATMAPS):
        _colorbar(fig, metric, ax=axes[:, c], location="bottom", shrink=0.9, aspect=20, pad=0.01)
    kind = pair.family if pair.algorithm == pair.family else f"{pair.family}, {pair.algorithm}"
    fig.suptitle(f"{pair.long_name()} ({kind})", fontweight="bold")
    return fig


# --------------------------------------------------------------- Table 8 alternatives

EXTRA_METRICS_TITLE = "Table 8 alternatives"


def extra_metrics_data(
    metrics: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    names: Sequence[str],
    dataset: str,
    stage: str = "backbone",
    probe_metrics: pd.DataFrame | None = None,
    labelled: Sequence[str] = (),
    probe_dataset: str | None = None,
) -> pd.DataFrame:
    """What :func:`extra_metrics_figure` draws: ``pair, metric, layer, value, dataset`` (hidden
    state i of both models), pairs in config order, metrics in ``names`` order; then the
    ``labelled`` metrics of the cross-model probe (``probe_metrics``: one value per pair on the
    sentence embeddings of ``probe_dataset``, ``layer`` empty)."""
    rows = []
    for name in names:
        for pair in ordered(pairs):
            curve = diagonal_curve(metrics, name, pair.key, stage, dataset)
            for layer, value in zip(curve["layer"], curve["value"], strict=True):
                rows.append(
                    {
                        "pair": pair.key,
                        "metric": name,
                        "layer": int(layer),
                        "value": value,
                        "dataset": dataset,
                    }
                )
    if probe_metrics is not None and len(labelled):
        sub = probe_metrics[
            (probe_metrics["stage"] == stage) & (probe_metrics["dataset"] == probe_dataset)
        ]
        for name in labelled:
            for pair in ordered(pairs):
                hit = sub[(sub["metric"] == name) & (sub["pair"] == pair.key)]
                if len(hit):
                    rows.append(
                        {
                            "pair": pair.key,
                            "metric": name,
                            "layer": None,
                            "value": float(hit["value"].iloc[0]),
                            "dataset": probe_dataset,
                        }
                    )
    frame = pd.DataFrame(rows, columns=["pair", "metric", "layer", "value", "dataset"])
    frame["layer"] = frame["layer"].astype("Int64")
    return frame


def _labelled_panel(ax, rows: pd.DataFrame, chosen, name: str, level: str) -> None:
    """One bar per pair (hatched: SFT-tuned pairs): a labelled metric of the cross-model probe
    on the final hidden state's sentence embeddings."""
    values = {r.pair: r.value for r in rows.itertuples()}
    shown = [p for p in chosen if p.key in values]
    for i, pair in enumerate(shown):
        colour = f"C{chosen.index(pair) % 10}"
        ax.bar(i, values[pair.key], color=colour, hatch="//" if pair.is_sft else None, alpha=0.8)
    ax.set_xticks(range(len(shown)), [style.wrap_label(p.label, 12) for p in shown])
    ax.set_ylim(0, 1.05)
    dataset = rows["dataset"].iloc[0]
    title = style.wrap_label(name.replace("_", " "), 22)
    where = f"probe, {dataset_label(dataset)}"
    ax.set_title(f"{title}\n({level} level, {where})" if level else f"{title}\n({where})")


def extra_metrics_figure(
    data: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    names: Sequence[str],
    levels: Mapping[str, str],
    dataset: str,
    stage: str = "backbone",
) -> Figure:
    """The extra metrics of ``hrsa.extra_metrics`` (the paper's Table 8 alternatives and any
    plug-in), one panel per metric: hidden state i of both models, one line per pair (dashed:
    SFT-tuned pairs). ``data``: :func:`extra_metrics_data`; ``levels``: metric -> HRSA level,
    shown in the panel title."""
    chosen = ordered(pairs)
    n = max(len(names), 1)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = style.new_figure(style.TEXT_WIDTH, 0.8 + 1.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    handles = []
    for ax, name in zip(axes.flat, names, strict=False):
        rows = data[data["metric"] == name]
        if len(rows) and rows["layer"].isna().all():  # a labelled metric: one value per pair
            _labelled_panel(ax, rows, chosen, name, levels.get(name, ""))
            continue
        drawn = False
        for p, pair in enumerate(chosen):
            curve = data[(data["metric"] == name) & (data["pair"] == pair.key)]
            if curve.empty:
                continue
            (line,) = ax.plot(
                curve["layer"].astype(float),
                curve["value"],
                color=f"C{p % 10}",
                ls="--" if pair.is_sft else "-",
                marker="o",
                ms=2.5,
                label=pair.label,
            )
            drawn = True
            if pair.label not in [h.get_label() for h in handles]:
                handles.append(line)
        if not drawn:
            _no_data(ax)
        level = levels.get(name, "")
        title = style.wrap_label(name.replace("_", " "), 22)
        ax.set_title(f"{title}\n({level} level)" if level else title)
        ax.set_xlabel("hidden state")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3))
    fig.suptitle(f"{EXTRA_METRICS_TITLE} ({dataset_label(dataset)}, {stage})", fontweight="bold")
    return fig


@style.styled
def task_training_figure(records: Mapping[str, dict], labels: Mapping[str, str]) -> Figure:
    """What RL and SFT did to the tiny base on its verifiable task (:mod:`hrsa.tiny_rl`), from
    the build records of the ``rlvr`` / ``task_sft`` models (``records``: model key -> record;
    ``labels``: model key -> display name): GRPO's mean reward per step (running mean over 10
    steps), greedy held-out accuracy of the base and of each model, and the relative weight
    change ``||dW|| / ||W||`` per layer."""
    fig = style.new_figure(style.TEXT_WIDTH, 2.6)
    ax_reward, ax_acc, ax_dw = fig.subplots(1, 3)
    colors = {key: f"C{i}" for i, key in enumerate(records)}
    drawn = False
    for key, rec in records.items():
        curve = np.asarray(rec.get("reward_curve") or [], dtype=float)
        if curve.size == 0:
            continue
        window = min(10, curve.size)
        smooth = np.convolve(curve, np.ones(window) / window, mode="valid")
        ax_reward.plot(
            np.arange(window, curve.size + 1), smooth, color=colors[key], label=labels[key]
        )
        drawn = True
    if drawn:
        ax_reward.set(xlabel="GRPO step", ylabel="mean reward (exact match)", ylim=(0, 1.02))
        ax_reward.set_title("RLVR training reward")
    else:
        _no_data(ax_reward, "no RLVR model")
    names = ["base", *[labels[k] for k in records]]
    before = [rec.get("heldout_accuracy_before") for rec in records.values()]
    values = [
        before[0] if before else np.nan,
        *[r.get("heldout_accuracy") for r in records.values()],
    ]
    bars = ax_acc.bar(
        range(len(names)), values, color=["0.6", *[colors[k] for k in records]], width=0.6
    )
    for bar, value in zip(bars, values, strict=True):
        ax_acc.text(bar.get_x() + bar.get_width() / 2, value + 0.02, f"{value:.2f}", ha="center")
    ax_acc.set_xticks(range(len(names)), [style.wrap_label(n, 10) for n in names])
    n_held = next(iter(records.values()), {}).get("heldout_n", "")
    ax_acc.set(ylabel="greedy accuracy", ylim=(0, 1.1))
    ax_acc.set_title(f"held-out accuracy (n={n_held})")
    for key, rec in records.items():
        change = rec.get("weight_change") or {}
        ax_dw.plot(list(change), list(change.values()), "o-", color=colors[key], label=labels[key])
    ax_dw.set(ylabel="||ΔW|| / ||W||")
    ax_dw.set_title("relative weight change")
    ax_dw.tick_params(axis="x", labelrotation=45)
    ax_dw.legend(frameon=False)
    return fig


def task_training_table(records: Mapping[str, dict], labels: Mapping[str, str]) -> pd.DataFrame:
    """The numbers of :func:`task_training_figure`, one row per model: algorithm, steps, lr,
    held-out accuracy before (the base) and after, first and last 10% mean reward (RLVR) and
    ``dW_<layer>`` = ||dW|| / ||W|| per layer."""
    rows = []
    for key, rec in records.items():
        row = {"model": key, "label": labels[key]}
        for name in ("algorithm", "steps", "lr", "group_size", "beta", "heldout_n"):
            row[name] = rec.get(name)
        for name in ("heldout_accuracy_before", "heldout_accuracy", "reward_first", "reward_last"):
            row[name] = rec.get(name)
        row.update({f"dW_{k}": v for k, v in (rec.get("weight_change") or {}).items()})
        rows.append(row)
    return pd.DataFrame(rows)
