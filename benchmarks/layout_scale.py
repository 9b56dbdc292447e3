"""Scale check for the spatial layouts (spiking.data.layout).

Synthetic correlated data: 1,000 samples x 20,000 features, 200 latent
factors, each feature = one factor + Gaussian noise (seeded). Times ``fit`` and
``transform`` of Correlation1DLayout and Embedding2DLayout and prints seconds
and peak RSS (resource.getrusage, ru_maxrss in KiB on Linux). Target: each fit
< 60 s on 2 cores.

Run: /work/main/.venv/bin/python benchmarks/layout_scale.py
"""
import datetime
import os
import resource
import time

import numpy as np

from spiking.data.layout import Correlation1DLayout, Embedding2DLayout


def peak_rss_mb():
    """Peak resident set size of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_data(n_samples=1000, n_features=20000, n_factors=200, noise=1.0, seed=0):
    """Return (X float32 (n_samples, n_features), factor index per feature)."""
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((n_samples, n_factors)).astype(np.float32)
    which = rng.integers(0, n_factors, n_features)
    X = factors[:, which] + noise * rng.standard_normal((n_samples, n_features)).astype(np.float32)
    return X, which


def neighbour_same_factor(order, which):
    """Fraction of adjacent positions holding features of the same factor."""
    w = which[order]
    return float(np.mean(w[1:] == w[:-1]))


def main():
    print(f"date {datetime.datetime.now().isoformat(timespec='seconds')}, "
          f"cpus {os.cpu_count()}")
    t = time.perf_counter()
    X, which = make_data()
    print(f"data {X.shape} {time.perf_counter() - t:.1f} s, peak RSS {peak_rss_mb():.0f} MiB")
    for layout in (Correlation1DLayout(), Embedding2DLayout()):
        name = type(layout).__name__
        t = time.perf_counter()
        layout.fit(X)
        t_fit = time.perf_counter() - t
        t = time.perf_counter()
        img = layout.transform(X)
        t_tr = time.perf_counter() - t
        print(f"{name}: fit {t_fit:.1f} s, transform {t_tr:.2f} s -> {img.shape}, "
              f"peak RSS {peak_rss_mb():.0f} MiB")
        if img.ndim == 3:
            order = layout.feature_map_
            print(f"  adjacent same-factor fraction {neighbour_same_factor(order, which):.3f} "
                  f"(random ~{1 / 200:.3f}), regime {getattr(layout, 'regime_', '?')}")
        else:
            fm = layout.feature_map_
            right = (fm[:, 1:] >= 0) & (fm[:, :-1] >= 0)
            same = which[fm[:, 1:][right]] == which[fm[:, :-1][right]]
            print(f"  horizontally adjacent same-factor fraction {same.mean():.3f} "
                  f"(random ~{1 / 200:.3f})")
        del img


if __name__ == "__main__":
    main()
