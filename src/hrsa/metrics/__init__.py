"""HRSA metrics at three levels (paper Section 3, Table 8, Appendix B).

Representation level (coordinate basis): :func:`dimension_wise_correlation`, :func:`procrustes`
(inverse row entropy ``h_inv`` of the optimal orthogonal map). Geometry level (shape of the
token manifold): :func:`linear_cka`, :func:`debiased_cka`, :func:`rbf_cka`,
:func:`knn_overlap`. Function level (linear readout): :func:`cross_model_probe`. Table 8's
alternatives (:mod:`.alternatives`): :func:`feature_wasserstein`, :func:`geodesic_correlation`,
:func:`gaussian_mutual_information`, :func:`behavioural_consistency` (and :func:`rbf_cka`).

Inputs are (N tokens x D features) matrices, numpy or torch, any float dtype. Every metric is
registered with its level and declared invariances in :data:`REGISTRY`. Layer-by-layer analysis
of two activation stores with uncertainty: :func:`compare_stores`.
"""

from .alternatives import (
    behavioural_consistency,
    feature_wasserstein,
    gaussian_mutual_information,
    geodesic_correlation,
)
from .function import (
    ProbeScore,
    cross_model_probe,
    probe_and_metrics,
    probe_stores,
    sentence_embeddings,
    stratified_split,
    write_probe_csv,
    write_probe_metrics_csv,
)
from .geometry import (
    debiased_cka,
    jaccard_rows,
    knn_overlap,
    linear_cka,
    nearest_neighbours,
    rbf_cka,
)
from .layerwise import (
    HRSASettings,
    LayerwiseSimilarity,
    SubsampleAnalysis,
    compare_stores,
    layerwise_similarity,
    subsample_analysis,
    subsample_rows,
)
from .registry import (
    LEVELS,
    REGISTRY,
    TRANSFORMS,
    MetricSpec,
    get_metric,
    metric,
    metrics,
    register,
)
from .representation import (
    DimensionWiseCorrelation,
    Procrustes,
    dimension_wise_correlation,
    inverse_row_entropy,
    procrustes,
)
from .result import METRICS_COLUMNS, HRSAResult
from .streaming import Source
from .uncertainty import (
    Interval,
    bootstrap_interval,
    bootstrap_over_sequences,
    percentile_interval,
    permutation_p_value,
    sequence_weights,
)

__all__ = [
    "LEVELS",
    "METRICS_COLUMNS",
    "REGISTRY",
    "TRANSFORMS",
    "DimensionWiseCorrelation",
    "HRSAResult",
    "HRSASettings",
    "Interval",
    "LayerwiseSimilarity",
    "MetricSpec",
    "Procrustes",
    "ProbeScore",
    "Source",
    "SubsampleAnalysis",
    "behavioural_consistency",
    "bootstrap_interval",
    "bootstrap_over_sequences",
    "compare_stores",
    "cross_model_probe",
    "debiased_cka",
    "dimension_wise_correlation",
    "feature_wasserstein",
    "gaussian_mutual_information",
    "geodesic_correlation",
    "get_metric",
    "inverse_row_entropy",
    "jaccard_rows",
    "knn_overlap",
    "layerwise_similarity",
    "linear_cka",
    "metric",
    "metrics",
    "nearest_neighbours",
    "percentile_interval",
    "permutation_p_value",
    "probe_and_metrics",
    "probe_stores",
    "procrustes",
    "rbf_cka",
    "register",
    "sentence_embeddings",
    "sequence_weights",
    "stratified_split",
    "subsample_analysis",
    "subsample_rows",
    "write_probe_csv",
    "write_probe_metrics_csv",
]
