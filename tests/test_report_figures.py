"""hrsa.report.figures: every figure on hand-made result files (panels, labels, colour limits,
values in the right cells, no text outside the figure)."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.image import AxesImage
from matplotlib.text import Text

from hrsa.report import collect, examples, figures, style

N_LAYERS = 3


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = examples.write_example_results(
        tmp_path_factory.mktemp("example"),
        datasets=("cot", "mmlu"),
        steps=(0, 100, 200),
        n_layers=N_LAYERS,
    )
    hrsa = root / "results" / "hrsa"
    config = json.loads((root / "config.json").read_text())
    return {
        "pairs": collect.pairs_from_config(config["pairs"], config["models"]),
        "metrics": collect.read_metrics(sorted(hrsa.glob("*/*/*/metrics.csv"))),
        "headlines": collect.read_headlines(sorted(hrsa.glob("*/*/*/summary.json"))),
        "probes": collect.read_probes(sorted(hrsa.glob("*/*/*/probe.csv"))),
    }


def drawn(fig):
    """Lay the figure out and check that nothing drawn leaves it (no clipped text)."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    used = fig.get_tightbbox()  # inches, everything drawn
    width, height = fig.get_size_inches()
    tolerance = 0.01
    assert used.x0 >= -tolerance and used.y0 >= -tolerance, used
    assert used.x1 <= width + tolerance and used.y1 <= height + tolerance, used
    return fig


def images(fig):
    return [a for a in fig.findobj(AxesImage)]


def panel_axes(fig):
    """Axes that draw data (not colour bars)."""
    return [ax for ax in fig.findobj(matplotlib.axes.Axes) if ax.get_label() != "<colorbar>"]


def test_figure3_heatmaps_limits_labels_and_cells(results):
    fig = drawn(
        figures.figure3(results["metrics"], results["pairs"], ["prorl", "sft"], dataset="cot")
    )
    heatmaps = images(fig)
    assert len(heatmaps) == 8  # 2 metrics x 2 stages x 2 pairs
    limits = {(im.get_cmap().name, im.get_clim()) for im in heatmaps}
    assert limits == {("RdBu_r", (-1.0, 1.0)), ("viridis", (0.0, 1.0))}
    # first panel: SFT pair (SFT first), LLM row, dimension-wise correlation
    first = heatmaps[0]
    expected = collect.layer_matrix(
        results["metrics"], "dimension_wise_correlation", "sft", "backbone", "cot"
    )
    np.testing.assert_allclose(first.get_array().filled(np.nan), expected)
    assert expected.shape == (N_LAYERS + 1, N_LAYERS + 1)
    ax = first.axes
    assert ax.get_ylabel() == "base layer"
    assert ax.get_title() == "SFT\nQwen2.5 vs DS"
    titles = [im.axes.get_title() for im in heatmaps]
    assert "RLVR\nDS vs ProRL" in titles and "DS-Emb vs ProRL-Emb" in titles
    xlabels = {im.axes.get_xlabel() for im in heatmaps}
    assert xlabels == {"", "reasoning layer"}
    texts = {t.get_text() for t in fig.findobj(Text)}
    assert {"Dimension-wise correlation", "Linear CKA", "LLM", "Embedding model"} <= texts


@style.styled
def test_heatmap_puts_base_layers_on_y_from_the_bottom():
    fig = matplotlib.figure.Figure()
    ax = fig.add_subplot()
    matrix = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])  # 2 base x 3 reasoning layers
    image = figures.heatmap(ax, matrix, "linear_cka")
    assert image.origin == "lower"
    assert image.get_extent() == [-0.5, 2.5, -0.5, 1.5]  # x: reasoning layers, y: base layers
    assert image.get_array()[1, 0] == 0.4  # base layer 1, reasoning layer 0


def test_main_figures_fit_long_model_names(results):
    # without a short "label", pairs are named by their full model names
    unlabelled = {k: {**v, "label": None} for k, v in examples.EXAMPLE_CONFIG["pairs"].items()}
    pairs = collect.pairs_from_config(unlabelled, examples.EXAMPLE_CONFIG["models"])
    assert len(pairs["prorl"].short_name("emb")) > 60
    drawn(figures.figure3(results["metrics"], pairs, ["sft", "prorl"], dataset="cot"))
    drawn(figures.figure4(results["probes"], pairs, ["sft", "prorl"], "ag_news"))


def test_figure4_bars_are_probe_accuracies(results):
    fig = drawn(figures.figure4(results["probes"], results["pairs"], ["sft", "prorl"], "ag_news"))
    axes = [ax for ax in panel_axes(fig) if ax.patches]
    assert len(axes) == 4
    assert axes[0].get_title() == "(a) Qwen2.5 vs DS"
    accuracy = collect.probe_accuracy(results["probes"], "sft", "backbone", "ag_news")
    heights = [bar.get_height() for bar in axes[0].patches]
    np.testing.assert_allclose(heights, [*accuracy["base"], *accuracy["reasoning"]])
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["train", "dev", "test"]
    sft_block = axes[0].get_figure(root=False)
    assert to_hex(sft_block.get_facecolor()) == style.SFT_BACKGROUND.lower()
    rlvr_block = axes[2].get_figure(root=False)
    assert to_hex(rlvr_block.get_facecolor()) != style.SFT_BACKGROUND.lower()


def test_figure5_lines_follow_steps(results):
    pair = results["pairs"]["prorl"]
    fig = drawn(figures.figure5(results["headlines"], pair, ["cot"], {"cot": "CoT"}))
    axes = [ax for ax in panel_axes(fig) if ax.lines]
    assert [ax.get_title() for ax in axes] == [title for title, _ in figures.DYNAMICS_PANELS]
    cka_mean = axes[0].lines[0]
    assert cka_mean.get_xdata().tolist() == [0, 100, 200]
    expected = [
        collect.headline(results["headlines"], "prorl", stage, "cot", "linear_cka_diagonal_mean")[0]
        for stage in ("step0", "step100", "step200")
    ]
    np.testing.assert_allclose(cka_mean.get_ydata(), expected)
    assert len(axes[3].lines) == len(examples.KS)  # one k-NN line per k
    assert axes[0].get_ylabel() == "CoT"


def test_dynamics_uses_backbone_as_step_zero_without_step0(results):
    headlines = results["headlines"][results["headlines"]["stage"] != "step0"]
    frame = figures.dynamics_frame(headlines, "prorl", "cot")
    assert sorted(frame["step"].unique()) == [0, 100, 200]
    assert set(frame.loc[frame["step"] == 0, "stage"]) == {"backbone"}


@pytest.mark.parametrize(
    "metric, stage", [("dimension_wise_correlation", "backbone"), ("linear_cka", "emb")]
)
def test_layer_grid_one_panel_per_pair_and_dataset(results, metric, stage):
    fig = drawn(
        figures.layer_grid(results["metrics"], results["pairs"], metric, stage, ["cot", "mmlu"])
    )
    heatmaps = images(fig)
    assert len(heatmaps) == 3 * 2
    low, high = figures.HEATMAPS[metric][2]
    assert {im.get_clim() for im in heatmaps} == {(low, high)}
    sft = [im for im in heatmaps if "Qwen2.5-Math-1.5B" in im.axes.get_ylabel()]
    assert len(sft) == 2
    for im in heatmaps:
        color = to_hex(im.axes.get_figure(root=False).get_facecolor())
        assert (color == style.SFT_BACKGROUND.lower()) == (im in sft)
    if stage == "emb":
        assert all(im.axes.get_xlabel().replace("\n", "").endswith("-Emb") for im in heatmaps)
    texts = {t.get_text() for t in fig.findobj(Text)}
    assert {"Dataset: CoT", "Dataset: mmlu", figures.HEATMAPS[metric][0]} <= texts


def test_knn_grid_one_line_per_k(results):
    fig = drawn(figures.knn_grid(results["metrics"], results["pairs"], "backbone", ["cot"]))
    axes = [ax for ax in panel_axes(fig) if ax.lines]
    assert len(axes) == 3
    solid = [line for line in axes[0].lines if line.get_linestyle() == "-"]
    assert [line.get_label() for line in solid] == ["k=5", "k=10", "k=50"]
    assert solid[0].get_xdata().tolist() == list(range(N_LAYERS + 1))
    assert axes[0].get_ylim() == (0.0, 1.0)


@pytest.mark.parametrize("keys", [["sft"], ["sft", "prorl"]])
def test_narrow_grids_keep_their_text_inside(results, keys):
    pairs = {k: results["pairs"][k] for k in keys}
    metrics = results["metrics"][results["metrics"]["pair"].isin(keys)]
    probes = results["probes"][results["probes"]["pair"].isin(keys)]
    drawn(figures.probe_grid(probes, pairs, "emb", ["ag_news"]))
    drawn(figures.knn_grid(metrics, pairs, "emb", ["cot"]))
    fig = drawn(figures.layer_grid(metrics, pairs, "linear_cka", "emb", ["cot"]))
    assert fig.get_size_inches()[0] < style.TEXT_WIDTH


def test_probe_grid_and_pair_overview(results):
    fig = drawn(figures.probe_grid(results["probes"], results["pairs"], "emb", ["ag_news"]))
    assert len([ax for ax in panel_axes(fig) if ax.patches]) == 3
    fig = drawn(
        figures.pair_overview(
            results["metrics"], results["pairs"]["sft"], ["backbone", "emb"], ["cot", "mmlu"]
        )
    )
    assert len(images(fig)) == 2 * 4  # two heatmaps per (stage, dataset) row
    assert fig.get_suptitle() == "Qwen2.5-Math-1.5B vs DeepSeek-R1-Distill-Qwen-1.5B (SFT)"


def test_save_figure_writes_png_and_pdf_atomically(results, tmp_path):
    fig = figures.figure4(results["probes"], results["pairs"], ["prorl"], "ag_news")
    style.save_figure(fig, tmp_path / "f.png", tmp_path / "f.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png"]  # no temporaries
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"


def test_missing_results_draw_no_data_panels(results):
    fig = drawn(figures.figure3(results["metrics"], results["pairs"], ["sft"], dataset="absent"))
    assert not images(fig)
    assert "no data" in {t.get_text() for t in fig.findobj(Text)}


def test_wrap_label_and_same_line_count():
    wrapped = style.wrap_label("Nemotron-Research-Reasoning-Qwen-1.5B", 22)
    assert all(len(line) <= 22 for line in wrapped.splitlines())
    assert wrapped.replace("\n", "") == "Nemotron-Research-Reasoning-Qwen-1.5B"
    assert style.same_line_count(["a", "b\nc"]) == ["\na", "b\nc"]


def texts_of(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text)]


def test_a_metric_left_out_by_hrsa_metrics_says_not_computed_not_no_data(results):
    """Panels of a metric hrsa.metrics left out say so; missing data elsewhere stays "no data"."""
    metrics = results["metrics"]
    without = metrics[~metrics["metric"].isin(["linear_cka", "knn_overlap"])]
    left_out = ("linear_cka", "knn_overlap")
    fig = drawn(
        figures.figure3(without, results["pairs"], ["prorl", "sft"], "cot", not_computed=left_out)
    )
    assert len(images(fig)) == 4  # the correlation heatmaps are still drawn
    assert texts_of(fig).count(figures.NOT_COMPUTED) == 4 and "no data" not in texts_of(fig)
    # the same frame without saying what was left out: "no data", as before
    assert (
        texts_of(drawn(figures.figure3(without, results["pairs"], ["sft"], "cot"))).count("no data")
        == 2
    )
    fig = drawn(
        figures.pair_overview(
            without, results["pairs"]["sft"], ["backbone"], ["cot"], not_computed=left_out
        )
    )
    assert texts_of(fig).count(figures.NOT_COMPUTED) == 2  # the CKA heatmap and the k-NN panel
    headlines = results["headlines"]
    no_h_inv = headlines[headlines["quantity"] != "h_inv_final"]
    fig = drawn(
        figures.figure5(no_h_inv, results["pairs"]["prorl"], ["cot"], not_computed=["procrustes"])
    )
    h_inv_panel = [ax for ax in panel_axes(fig) if ax.get_title() == figures.DYNAMICS_PANELS[2][0]]
    assert [t.get_text() for t in h_inv_panel[0].texts] == [figures.NOT_COMPUTED]
