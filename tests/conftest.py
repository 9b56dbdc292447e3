"""Shared fixtures: paths of the real data in ../shared and a small stratified subset of it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

try:  # the torch environment (.venv); tests/nengo runs in .venv-nengo, which has no torch
    import torch
except ImportError:
    torch = None
else:
    # Two cores are shared by the test process and anything else running: more
    # threads than cores makes torch's CPU kernels crawl.
    torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TCGA_DIR = SHARED_DATA / "tcga-mirna"


@pytest.fixture(scope="session")
def tcga_subset(tmp_path_factory) -> dict:
    """A small stratified subset of the real TCGA miRNA data, written as matrix + labels CSVs.

    5 of the 10 most frequent primary-tumour cohorts (COAD/LAML/OV/READ excluded, as
    the default missing policy does), 60 samples each, drawn with a fixed seed;
    the labels table also keeps rows of other sample types and cohorts so the
    filters and the id join are exercised.
    """
    labels = pd.read_csv(TCGA_DIR / "tcga_mirnaseq_labels.csv", dtype=str, keep_default_na=False)
    prim = labels[labels.sample_type == "01"]
    cohorts = ["BRCA", "KIRC", "LUAD", "PRAD", "THCA"]
    chosen = (prim[prim.cohort.isin(cohorts)].groupby("cohort", group_keys=False)
              .sample(n=60, random_state=0))
    distractors = labels[(labels.sample_type != "01")].sample(n=40, random_state=0)
    keep_ids = set(chosen.row_id) | set(distractors.row_id)
    rpm = pd.read_csv(TCGA_DIR / "tcga_mirnaseq_rpm.csv.gz", index_col=0)
    sub = rpm.loc[rpm.index.isin(keep_ids)].sample(frac=1.0, random_state=1)  # shuffled rows
    d = tmp_path_factory.mktemp("tcga_subset")
    sub.to_csv(d / "matrix.csv.gz", index_label="row_id")
    labels[labels.row_id.isin(keep_ids)].to_csv(d / "labels.csv", index=False)
    return {"dir": d, "matrix": d / "matrix.csv.gz", "labels": d / "labels.csv", "classes": cohorts,
            "n_per_class": 60}
