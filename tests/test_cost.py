"""hrsa.metrics.cost: the counts behind benchmarks/scale.py, against hand-computed values."""

from hrsa.metrics.cost import (
    AnalysisSize,
    DeviceRates,
    accumulator_bytes,
    analysis_cost,
    passes_needed,
    predict_seconds,
)


def test_counts_of_a_small_analysis_by_hand():
    size = AnalysisSize(
        n_tokens=1000, dim=8, n_hidden=3, subsample=100, bootstrap=4, permutations=2
    )
    cost = analysis_cost(size, budget_bytes=10**9)
    assert cost.store_bytes == 1000 * 3 * 8 * 2
    assert cost.passes == 1 and cost.read_amplification == 1.0
    assert cost.flops["cross"] == 9 * 2 * 1000 * 64
    assert cost.flops["self"] == 2 * 3 * 2 * 1000 * 64
    assert cost.flops["knn"] == 2 * 3 * 2 * 100 * 100 * 8
    assert cost.flops["permutations"] == 3 * 2 * 2 * 100 * 64
    # n = 100 > D = 8: weighted D x D products are cheaper than n x n Gram matrices
    h_inv = 4 * (2 * 100 * 64 + 30 * 8**3)  # final state: one cross product + polar per replicate
    assert cost.flops["bootstrap"] == 3 * 4 * 3 * 2 * 100 * 64 + h_inv
    assert cost.accumulator_bytes == (9 + 6) * 64 * 8 == accumulator_bytes(8, 3)


def test_passes_and_reads_are_the_engines_own_plan():
    d, h = 64, 29
    full = accumulator_bytes(d, h)
    assert passes_needed(d, h, full) == 1
    assert passes_needed(d, h, full - 1) == 2
    assert passes_needed(d, h, full // 4) == 5  # as tests/test_engine_one_pass.py measures
    assert passes_needed(d, h, accumulator_bytes(d, h, "fp32"), "fp32") == 1
    size = AnalysisSize(n_tokens=10_000, dim=d, n_hidden=h)
    one = analysis_cost(size, budget_bytes=full)
    assert one.bytes_read == 2 * one.store_bytes and one.read_amplification == 1.0
    several = analysis_cost(size, budget_bytes=full // 4)
    assert several.passes == 5 and 1.0 < several.read_amplification <= 5.0


def test_prediction_is_the_slower_of_reading_and_computing_plus_the_subsample_phases():
    size = AnalysisSize(n_tokens=10_000, dim=64, n_hidden=5, subsample=1000)
    cost = analysis_cost(size, budget_bytes=10**9)
    slow_disk = DeviceRates(
        "t", gemm_flops=1e15, read_bytes_per_s=1e3, memory_bytes=10**10, source=""
    )
    out = predict_seconds(size, slow_disk)
    assert out["predicted_seconds"] >= cost.bytes_read / 1e3
    fast_disk = DeviceRates(
        "t", gemm_flops=1e9, read_bytes_per_s=1e15, memory_bytes=10**10, source=""
    )
    out = predict_seconds(size, fast_disk)
    total = sum(cost.flops.values()) / 1e9
    assert abs(out["predicted_seconds"] - total) < 1e-6 * total
