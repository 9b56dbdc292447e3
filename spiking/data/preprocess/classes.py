"""Class selection: keep the k most frequent classes (the study's top-10 TCGA cohorts)."""

from __future__ import annotations

from collections import Counter

import numpy as np
from spiking.data import DataError


def top_k_classes(y: np.ndarray, k: int) -> list[str]:
    """Return the ``k`` most frequent labels of ``y``.

    Args:
        y: labels, shape (n,), any hashable values (TCGA cohort codes here).
        k: how many classes to keep; ``k <= 0`` keeps all.

    Returns:
        The kept labels sorted alphabetically (so class indices do not depend on
        counts). Ties at the cut are broken alphabetically, deterministically.

    Raises:
        ValueError: ``y`` is empty or fewer than 2 classes would remain.
    """
    if len(y) == 0:
        raise DataError("no samples: cannot choose the most frequent classes")
    counts = Counter(np.asarray(y).tolist())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    kept = [label for label, _ in (ranked if k <= 0 else ranked[:k])]
    if len(kept) < 2:
        raise DataError(f"only {len(kept)} class(es) available; classification needs at least 2")
    return sorted(kept)
