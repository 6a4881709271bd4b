"""Speed and agreement of the batched bootstrap replicates and the polar-factor Procrustes
(issue 13, item 3). Prints one JSON object; every ratio is measured in this one run, on the
same rows, on this machine.

On one synthetic hidden state pair (the subsample of ``subsample_analysis``: n rows in
sequences of 16-127 tokens, width D, large offsets), with the paper's uncertainty settings
(B bootstrap replicates, P permutations):

* ``bootstrap_layer``: the replicates of linear CKA, dimension-wise correlation and k-NN
  overlap of one hidden state: :func:`hrsa.metrics.uncertainty.bootstrap_replicates_reference`
  (today's engine: three D x D products per replicate) against
  :func:`hrsa.metrics.uncertainty.bootstrap_replicates` (Gram matrices of the n rows once);
* ``bootstrap_final_layer``: the same with H_inv (the final hidden state): the reference adds an
  fp64 SVD per replicate; the new code one cross product per replicate (per-sequence products
  combined) and the mostly-fp32 polar iteration (``polar``, the default) or the fp64 SVD
  (``svd``);
* ``permutation_nulls``: the unchanged permutation nulls of one hidden state, for scale;
* ``subsample_analysis_estimate``: (L - 1) plain layers + the final layer + L permutation
  nulls, from the times above, for L hidden states (old / new);
* ``agreement``: max |new - reference| over the replicates, and against an independent fp64
  formula on the first replicates.

Usage: OMP_NUM_THREADS=1 python benchmarks/uncertainty.py [--rows 4096] [--dim 512]
[--replicates 200] [--permutations 50] [--layers 13] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import numpy as np
import torch


def make_pair(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(16, 128, n // 16)
    lengths = lengths[np.cumsum(lengths) <= n]
    lengths = np.append(lengths, n - lengths.sum()).astype(int)
    lengths = lengths[lengths > 0]
    seq = np.repeat(np.arange(len(lengths)), lengths)
    h = rng.standard_normal((n, d))
    for _ in range(3):
        h = np.tanh(h @ (np.eye(d) + rng.standard_normal((d, d)) / (3 * np.sqrt(d))))
        h = h + 0.1 * rng.standard_normal((n, d))
    drift = np.eye(d) + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d)
    x = h + 20.0 * rng.standard_normal(d)
    y = h @ drift + 0.05 * rng.standard_normal((n, d))
    return (
        torch.tensor(x, dtype=torch.float32),
        torch.tensor(y, dtype=torch.float32),
        seq,
        len(lengths),
    )


def fp64_replicates(xc, yc, w, cx, cy):
    from hrsa.metrics.representation import inverse_row_entropy

    x, y = xc.double(), yc.double()
    keep_feat = ~(cx | cy)
    out = []
    for wr in w:
        s = wr.sum()
        xw, yw = x - wr @ x / s, y - wr @ y / s
        gxy = xw.T @ (wr[:, None] * yw)
        gxx, gyy = xw.T @ (wr[:, None] * xw), yw.T @ (wr[:, None] * yw)
        cka = float(gxy.square().sum() / torch.sqrt(gxx.square().sum() * gyy.square().sum()))
        dx, dy = gxx.diagonal(), gyy.diagonal()
        keep = keep_feat & (dx > 0) & (dy > 0)
        corr = float((gxy.diagonal()[keep] / torch.sqrt(dx[keep] * dy[keep])).mean())
        u, _, vh = torch.linalg.svd(gxy)
        out.append((cka, corr, inverse_row_entropy(u @ vh)))
    return np.array(out)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--permutations", type=int, default=50)
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--fp64-check", type=int, default=8, help="replicates checked against fp64")
    ap.add_argument("--quick", action="store_true", help="rows 1024, dim 128, B 40, P 10")
    args = ap.parse_args(argv)
    if args.quick:
        args.rows, args.dim, args.replicates, args.permutations = 1024, 128, 40, 10

    from hrsa.metrics.uncertainty import (
        bootstrap_replicates,
        bootstrap_replicates_reference,
        centred,
        permutation_nulls,
        row_permutations,
        sequence_weights,
    )

    torch.manual_seed(0)
    x, y, seq, n_seq = make_pair(args.rows, args.dim)
    xc, mx = centred(x)
    yc, my = centred(y)
    cx, cy = mx.constant, my.constant
    w = torch.from_numpy(
        sequence_weights(seq, n_seq, args.replicates, np.random.SeedSequence([0, 1]))
    )
    jac = {10: torch.rand(args.rows, dtype=torch.float64)}
    perms, invs = row_permutations(args.rows, args.permutations, 2)

    ref_plain, t_ref_plain = timed(lambda: bootstrap_replicates_reference(w, jac, xc, yc, cx, cy))
    new_plain, t_new_plain = timed(lambda: bootstrap_replicates(w, jac, xc, yc, cx, cy))
    ref_final, t_ref_final = timed(
        lambda: bootstrap_replicates_reference(w, jac, xc, yc, cx, cy, with_h_inv=True)
    )
    new_svd, t_new_svd = timed(
        lambda: bootstrap_replicates(w, jac, xc, yc, cx, cy, with_h_inv=True, procrustes="svd")
    )
    new_polar, t_new_polar = timed(
        lambda: bootstrap_replicates(w, jac, xc, yc, cx, cy, with_h_inv=True, procrustes="polar")
    )
    _, t_perm = timed(lambda: permutation_nulls(perms, invs, xc, yc))
    k = min(args.fp64_check, args.replicates)
    exact, t_fp64 = timed(lambda: fp64_replicates(xc, yc, w[:k], cx, cy))

    def maxdiff(a, b):
        return float(np.nanmax(np.abs(np.asarray(a) - np.asarray(b))))

    agreement = {}
    for name, col in (("linear_cka", 0), ("dimension_wise_correlation", 1), ("h_inv", 2)):
        src_new = new_polar if name == "h_inv" else new_plain
        agreement[name] = {
            "new_vs_reference": maxdiff(getattr(src_new, name), getattr(ref_final, name)),
            "new_vs_fp64": maxdiff(getattr(src_new, name)[:k], exact[:, col]),
            "reference_vs_fp64": maxdiff(getattr(ref_final, name)[:k], exact[:, col]),
        }
    agreement["h_inv"]["new_svd_vs_reference"] = maxdiff(new_svd.h_inv, ref_final.h_inv)
    agreement["knn"] = {"new_vs_reference": maxdiff(new_plain.knn[10], ref_plain.knn[10])}

    n_l = args.layers
    t_old_total = (n_l - 1) * t_ref_plain + t_ref_final + n_l * t_perm
    t_new_total = (n_l - 1) * t_new_plain + t_new_polar + n_l * t_perm
    out = {
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
        "settings": {
            "rows": args.rows,
            "dim": args.dim,
            "replicates": args.replicates,
            "permutations": args.permutations,
            "sequences": n_seq,
            "layers_for_estimate": n_l,
        },
        "seconds": {
            "bootstrap_layer_reference": t_ref_plain,
            "bootstrap_layer_new": t_new_plain,
            "bootstrap_final_layer_reference": t_ref_final,
            "bootstrap_final_layer_new_svd": t_new_svd,
            "bootstrap_final_layer_new_polar": t_new_polar,
            "permutation_nulls_layer": t_perm,
            "fp64_check": t_fp64,
        },
        "ratios": {
            "bootstrap_layer": t_ref_plain / t_new_plain,
            "bootstrap_final_layer_svd": t_ref_final / t_new_svd,
            "bootstrap_final_layer_polar": t_ref_final / t_new_polar,
            "subsample_analysis_estimate": t_old_total / t_new_total,
        },
        "subsample_analysis_estimate_seconds": {"old": t_old_total, "new": t_new_total},
        "agreement": agreement,
    }
    assert all(math.isfinite(v) for v in out["ratios"].values())
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
