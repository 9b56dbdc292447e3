"""Tests of the Keras/NengoDL pipeline; they run only in the second environment ``.venv-nengo``
(TensorFlow 2.12, Nengo 3.2, NengoDL 3.6, no torch)::

    PYTHONPATH=. RAY_TRAIN_V2_ENABLED=0 .venv-nengo/bin/python -m pytest -q tests/nengo -p no:cacheprovider

Every test here gets the ``nengo`` marker. TensorFlow runs on at most 2 threads with its logs
quieted (the machine's 2 cores are shared).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

tf = pytest.importorskip("tensorflow")
pytest.importorskip("nengo_dl")

tf.get_logger().setLevel("ERROR")
try:
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:  # TensorFlow already initialised by someone else: keep its settings
    pass
warnings.filterwarnings("ignore", message="No GPU support detected")

HERE = Path(__file__).resolve().parent

#: The phenotype trained once for the whole folder: valid conv with stride, max-pool (valid),
#: batch-norm, dropout, a ReLU fc layer.
TRAINED_PHENOTYPE = (
    "layer:conv num-filters:8 filter-shape:8 stride:4 padding:valid act:relu bias:True "
    "layer:pool-max kernel-size:2 stride:2 padding:valid layer:batch-norm layer:dropout rate:0.2 "
    "layer:fc num-units:32 act:relu bias:True "
    "learning:adam lr:0.003 beta1:0.9 beta2:0.999 decay:0.0001 early_stop:6 batch_size:32")


def pytest_configure(config):
    config.addinivalue_line("markers", "nengo: Keras/NengoDL tests, run in .venv-nengo only")
    # Keras 2.12 seeds with random.randint(1, 1e9) (a float bound), deprecated since Python 3.10
    config.addinivalue_line("filterwarnings", "ignore:non-integer arguments to randrange:DeprecationWarning")


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection
def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.nengo)


@pytest.fixture(scope="session")
def prepared(tcga_subset, tmp_path_factory):
    """The real TCGA subset (5 cohorts x 60) ingested and prepared: x per split float32 (n, L) in [0, 1]."""
    from spiking.data.ingest import SHARED_TCGA, ingest, load_dataset
    from spiking.data.preprocess.prepare import prepare

    out = tmp_path_factory.mktemp("nengo") / "shards"
    ingest(tcga_subset["matrix"], tcga_subset["labels"], out, **SHARED_TCGA)
    prep = prepare(load_dataset(out), top_k=5, fractions=(0.6, 0.2, 0.2), seed=0)
    x = {part: v[:, 0, :] for part, v in prep.X.items()}
    return {"x": x, "y": prep.y, "classes": prep.class_names, "L": x["train"].shape[1]}


@pytest.fixture(scope="session")
def trained(prepared):
    """:data:`TRAINED_PHENOTYPE` trained with fit_keras on the real subset (a few seconds)."""
    from spiking.keras.fit import fit_keras
    from spiking.keras.phenotype import build_keras_model, compile_model
    from spiking.specs.phenotype import parse_phenotype

    ph = parse_phenotype(TRAINED_PHENOTYPE)
    model = compile_model(build_keras_model(ph, prepared["L"], 5, seed=0), ph.learning)
    x, y = prepared["x"], prepared["y"]
    result = fit_keras(model, ph.learning, x["train"], y["train"], x["val"], y["val"], time_budget_s=90,
                       max_epochs=60, seed=0)
    return {"model": model, "phenotype": ph, "result": result}


@pytest.fixture
def rng():
    return np.random.default_rng(0)
