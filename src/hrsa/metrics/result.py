"""The outputs of one layer-by-layer comparison: ``metrics.csv`` and ``summary.json``.

:class:`HRSAResult` holds what :func:`~hrsa.metrics.layerwise.compare_stores` computed (the
streamed layer-by-layer matrices and the subsample analysis) and turns it into the rows of
``metrics.csv`` (:data:`METRICS_COLUMNS`) and the ``summary.json`` of docs/contracts.md, contract 2:
headline numbers with bootstrap intervals, bootstrap bias estimates, permutation nulls and
p-values, and the settings. Re-exported by :mod:`hrsa.metrics.layerwise` and :mod:`hrsa.metrics`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import PAPER_METRICS
from .output import atomic_write_csv, atomic_write_json, jsonable
from .uncertainty import bootstrap_interval, percentile_interval, permutation_p_value

if TYPE_CHECKING:
    from .layerwise import HRSASettings, LayerwiseSimilarity, SubsampleAnalysis

METRICS_COLUMNS = ["metric", "layer_base", "layer_reason", "k", "value", "ci_low", "ci_high"]
_NAN = float("nan")


#: hidden state where the transformer layers begin; 0 is the embedding lookup
FIRST_TRANSFORMER_LAYER = 1

KNN_LAYER_MEANS = {
    "knn_overlap_mean": "mean over all hidden states 0..L (layer 0 = embedding output), "
    "the paper's definition of Table 4",
    "knn_overlap_mean_transformer_layers": "mean over the transformer layers only, hidden "
    "states 1..L (layer 0 left out)",
}
KNN_LAYER_0_NOTE = (
    "At layer 0 (the embedding lookup) every repeat of a token is the same row, so its nearest "
    "neighbours tie at cosine 1. This engine breaks ties by row index, the same rule in both "
    "models, so layer 0 overlaps ~1.0; the authors' code takes the first k of a top-50 list, an "
    "arbitrary order inside the tie, and gets ~0.1-0.3. Their published k=5/10 layer means are "
    "therefore lower than knn_overlap_mean computed here by about (layer-0 gap)/(L+1); "
    "knn_overlap_mean_transformer_layers does not depend on the tie order."
)
KNN_TABLE4_NOTE = (
    "Table 4 of the report shows both means, labelled: knn_overlap_mean (layers 0..L, the "
    "paper's definition) and knn_overlap_mean_transformer_layers (layers 1..L); the Table 2 "
    "local-geometry verdict uses the one named by report.verdicts.knn_layers (default: "
    "transformer layers)."
)


def _layer_mean(per_layer, first: int = 0) -> float:
    """Mean of a per-layer vector from hidden state ``first`` on; NaN when nothing is left."""
    v = np.asarray(per_layer, dtype=np.float64)[first:]
    return float(v.mean()) if v.size else _NAN


def _replicate_layer_mean(replicates: np.ndarray, first: int = 0) -> np.ndarray:
    """Per replicate (rows), the mean over hidden states ``first`` on (columns)."""
    r = np.asarray(replicates, dtype=np.float64)
    if r.shape[1] <= first:
        return np.full(r.shape[0], _NAN)
    return r[:, first:].mean(1)


#: the paper's metric (hrsa.metrics) behind each summary.json headline, by the key's prefix
_HEADLINE_METRICS = (
    ("linear_cka", "linear_cka"),
    ("dimension_wise_correlation", "dimension_wise_correlation"),
    ("h_inv", "procrustes"),
    ("knn_overlap", "knn_overlap"),
)


def _selected(entries: dict, settings) -> dict:
    """``entries`` (headline key -> value) without the keys of metrics ``hrsa.metrics`` leaves
    out."""
    out = {}
    for key, value in entries.items():
        metric = next((m for prefix, m in _HEADLINE_METRICS if key.startswith(prefix)), None)
        if metric is None or settings.computes(metric):
            out[key] = value
    return out


def _bias(replicates, estimate) -> float | None:
    """Bootstrap bias estimate mean(replicates) - estimate (on the subsample)."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    return float(r.mean() - estimate) if r.size and np.isfinite(estimate) else None


@dataclass
class HRSAResult:
    """Everything one comparison produced; :meth:`records` and :meth:`summary` are the
    ``metrics.csv`` rows and ``summary.json`` of docs/contracts.md, contract 2."""

    settings: HRSASettings
    layerwise: LayerwiseSimilarity
    subsample: SubsampleAnalysis
    n_tokens: int
    n_sequences: int
    n_hidden_states: int
    dim: int
    device: str

    # --- intervals ----------------------------------------------------------------------
    def _interval(self, value: float, replicates) -> tuple:
        return bootstrap_interval(value, replicates, self.settings.ci)

    def _headline(self, value, replicates) -> dict:
        lo, hi = self._interval(value, replicates)
        return {"value": value, "ci_low": lo, "ci_high": hi}

    # --- outputs --------------------------------------------------------------------------
    def records(self) -> list[dict]:
        lw, ss, ci = self.layerwise, self.subsample, self.settings.ci
        nl = len(lw.debiased_cka)
        rec = []

        def row(metric, i, j, value, lo=None, hi=None, k=None):
            rec.append(
                {
                    "metric": metric,
                    "layer_base": i,
                    "layer_reason": j,
                    "k": k,
                    "value": float(value),
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )

        wants = self.settings.computes  # hrsa.metrics: the rows of a metric left out are absent
        for name, full, boot in (
            (
                "dimension_wise_correlation",
                lw.dimension_wise_correlation,
                ss.dimension_wise_correlation_boot,
            ),
            ("linear_cka", lw.linear_cka, ss.linear_cka_boot),
        ):
            if not wants(name):
                continue
            for i in range(full.shape[0]):
                for j in range(full.shape[1]):
                    lo = hi = None
                    if i == j and i < nl:
                        lo, hi = self._interval(full[i, i], boot[:, i])
                    row(name, i, j, full[i, j], lo, hi)
        if wants("linear_cka"):
            for i in range(nl):
                row("debiased_cka", i, i, lw.debiased_cka[i])
        if wants("procrustes"):
            for i in range(nl):
                lo = hi = None
                if i == nl - 1:
                    lo, hi = self._interval(lw.procrustes_h_inv[i], ss.h_inv_final_boot)
                row("procrustes_h_inv", i, i, lw.procrustes_h_inv[i], lo, hi)
            for i in range(nl):
                row("procrustes_residual", i, i, lw.procrustes_residual[i])
        ks = self._knn_ks()
        for i in range(nl):
            for k in ks:
                lo, hi = self._interval(ss.knn[k][i], ss.knn_boot[k][:, i])
                row("knn_overlap", i, i, ss.knn[k][i], lo, hi, k)
        for name, values in ss.extra.items():
            for i in range(nl):
                row(name, i, i, values[i])
        if ss.linear_cka_null.shape[0]:
            for i in range(nl):
                for k in ks:
                    null = ss.knn_null[k][:, i]
                    row(
                        "knn_overlap_null", i, i, np.mean(null), *percentile_interval(null, ci), k=k
                    )
            if wants("linear_cka"):
                for i in range(nl):
                    null = ss.linear_cka_null[:, i]
                    row("linear_cka_null", i, i, np.mean(null), *percentile_interval(null, ci))
        return rec

    def _knn_ks(self) -> tuple[int, ...]:
        """The k of the k-NN overlap rows and headlines: none when it is not selected."""
        return self.settings.knn_k if self.settings.computes("knn_overlap") else ()

    def summary(self, pair: str = "", stage: str = "", dataset: str = "") -> dict:
        lw, ss, s = self.layerwise, self.subsample, self.settings
        final = len(lw.debiased_cka) - 1
        first = FIRST_TRANSFORMER_LAYER
        ks = self._knn_ks()
        cka_diag = np.diagonal(lw.linear_cka)
        corr_diag = np.diagonal(lw.dimension_wise_correlation)
        headline = {
            "linear_cka_diagonal_mean": self._headline(
                float(np.mean(cka_diag)), ss.linear_cka_boot.mean(1)
            ),
            "linear_cka_final": self._headline(
                float(cka_diag[final]), ss.linear_cka_boot[:, final]
            ),
            "dimension_wise_correlation_diagonal_mean": self._headline(
                float(np.mean(corr_diag)), ss.dimension_wise_correlation_boot.mean(1)
            ),
            "dimension_wise_correlation_final": self._headline(
                float(corr_diag[final]), ss.dimension_wise_correlation_boot[:, final]
            ),
            "h_inv_final": self._headline(float(lw.procrustes_h_inv[final]), ss.h_inv_final_boot),
            "knn_overlap_mean": {
                str(k): self._headline(_layer_mean(ss.knn[k]), ss.knn_boot[k].mean(1)) for k in ks
            },
            "knn_overlap_mean_transformer_layers": {
                str(k): self._headline(
                    _layer_mean(ss.knn[k], first),
                    _replicate_layer_mean(ss.knn_boot[k], first),
                )
                for k in ks
            },
        }
        bias = {
            "linear_cka_final": _bias(ss.linear_cka_boot[:, final], ss.linear_cka[final]),
            "dimension_wise_correlation_final": _bias(
                ss.dimension_wise_correlation_boot[:, final], ss.dimension_wise_correlation[final]
            ),
            "h_inv_final": _bias(ss.h_inv_final_boot, ss.h_inv_final),
            "knn_overlap_mean": {
                str(k): _bias(ss.knn_boot[k].mean(1), _layer_mean(ss.knn[k])) for k in ks
            },
            "knn_overlap_mean_transformer_layers": {
                str(k): _bias(
                    _replicate_layer_mean(ss.knn_boot[k], first), _layer_mean(ss.knn[k], first)
                )
                for k in ks
            },
        }
        headline, bias = _selected(headline, s), _selected(bias, s)
        n_perm = ss.linear_cka_null.shape[0]

        def null_entry(null, observed):
            return {
                "mean": float(np.mean(null)) if n_perm else None,
                "p_value": permutation_p_value(null, observed),
                "n": n_perm,
            }

        null = {
            "linear_cka_final": null_entry(
                ss.linear_cka_null[:, final], float(ss.linear_cka[final])
            ),
            "knn_overlap_mean": {
                str(k): null_entry(ss.knn_null[k].mean(1), _layer_mean(ss.knn[k])) for k in ks
            },
            "knn_overlap_mean_transformer_layers": {
                str(k): null_entry(
                    _replicate_layer_mean(ss.knn_null[k], first), _layer_mean(ss.knn[k], first)
                )
                for k in ks
            },
        }
        return jsonable(
            {
                "pair": pair,
                "stage": stage,
                "dataset": dataset,
                "n_tokens": self.n_tokens,
                "n_sequences": self.n_sequences,
                "n_hidden_states": self.n_hidden_states,
                "dim": self.dim,
                "headline": headline,
                "metrics_not_computed": [
                    name
                    for names in PAPER_METRICS.values()
                    for name in names
                    if name != "cross_model_probe" and not s.computes(name)
                ],
                "knn_overlap_layers": {
                    **KNN_LAYER_MEANS,
                    "layer_0": {str(k): float(ss.knn[k][0]) for k in ks},
                    "layer_0_ties": KNN_LAYER_0_NOTE,
                    "table4": KNN_TABLE4_NOTE,
                }
                if ks
                else {},
                "extra_metrics": self._extra_summary(final, first),
                "null": _selected(null, s),
                "bootstrap_bias": bias,
                "dropped_features": {
                    "base": lw.dropped_base[final],
                    "reasoning": lw.dropped_reasoning[final],
                },
                "dropped_features_per_layer": {
                    "base": lw.dropped_base,
                    "reasoning": lw.dropped_reasoning,
                },
                "undefined": lw.undefined + [u for u in ss.undefined if u not in lw.undefined],
                "settings": {
                    **s.as_dict(),
                    "device_requested": s.device,
                    "device": self.device,
                    "subsample_tokens": int(ss.rows.size),
                    "bootstrap_unit": "sequence",
                    "ci_method": "bootstrap over sequences on the shared subsample: percentile "
                    "interval of the replicates' deviations from their median, placed "
                    "around the full-data estimate",
                    "null_method": "rows of the reasoning model permuted on the shared subsample; "
                    "p = (1 + #null >= observed) / (1 + n)",
                    "dropped_features_layer": "final hidden state",
                },
                "seconds": {"layerwise": round(lw.seconds, 3), "subsample": round(ss.seconds, 3)},
            }
        )

    def _extra_summary(self, final: int, first: int) -> dict:
        """Per extra metric (``hrsa.extra_metrics``): level, description, the value per hidden
        state, at the final one and the mean over the transformer layers (no intervals)."""
        from .registry import REGISTRY

        out = {}
        for name, values in self.subsample.extra.items():
            spec = REGISTRY.get(name)
            out[name] = {
                "level": spec.level if spec else None,
                "description": spec.description if spec else "",
                "per_layer": [float(v) for v in values],
                "final": float(values[final]),
                "mean_transformer_layers": _layer_mean(values, first),
                "computed_on": "the shared subsample, hidden state i of both models",
            }
        return out

    def write(
        self,
        metrics: str | os.PathLike,
        summary: str | os.PathLike,
        *,
        pair: str = "",
        stage: str = "",
        dataset: str = "",
    ) -> tuple[Path, Path]:
        """Atomically write ``metrics.csv`` and ``summary.json``."""
        m = atomic_write_csv(metrics, METRICS_COLUMNS, self.records())
        j = atomic_write_json(summary, self.summary(pair, stage, dataset))
        return m, j
