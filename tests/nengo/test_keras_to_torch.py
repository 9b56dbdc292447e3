"""Keras phenotype networks (this environment) loaded into their PyTorch twins (the torch environment
``.venv``) with ``spiking.models.phenotype_torch.load_keras_weights``: the logits agree.

The Keras side builds and randomises each network, writes its weights
(``np.savez(path, *model.get_weights())``) and its ``training=False`` logits on random inputs in
[0, 1]; one ``.venv/bin/python`` subprocess (this environment has no torch) rebuilds every network
with ``build_torch_model``, loads the weights (``read_weights_npz`` + ``load_keras_weights``), runs
it in eval mode and writes the largest absolute logit difference and its argmax per network.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from spiking.keras.phenotype import build_keras_model
from spiking.specs.phenotype import parse_phenotype

REPO = Path(__file__).resolve().parents[2]
TORCH_PYTHON = REPO / ".venv" / "bin" / "python"
L, N_CLASSES, N_SAMPLES = 60, 4, 16
LEARN = "learning:adam lr:0.001 beta1:0.9 beta2:0.999 decay:0.0 early_stop:3 batch_size:16"

#: conv valid/same with strides > 1, both pools with same/valid (uneven 'same' padding included),
#: batch-norm before and after pooling, dropout, fc relu/sigmoid/linear with and without bias, no fc.
PHENOTYPES = {
    "conv-valid-s2_pool-max-same_bn_dropout_fc-relu_fc-sigmoid": (
        "layer:conv num-filters:6 filter-shape:5 stride:2 padding:valid act:relu bias:True "
        "layer:pool-max kernel-size:3 stride:2 padding:same layer:batch-norm layer:dropout rate:0.3 "
        "layer:fc num-units:16 act:relu bias:True layer:fc num-units:8 act:sigmoid bias:False"),
    "conv-same-s3-sigmoid_pool-avg-same_bn_no-fc": (
        "layer:conv num-filters:5 filter-shape:5 stride:3 padding:same act:sigmoid bias:False "
        "layer:pool-avg kernel-size:4 stride:3 padding:same layer:batch-norm"),
    "pool-avg-valid_conv-same-linear_pool-max-valid_dropout_fc-linear": (
        "layer:pool-avg kernel-size:3 stride:1 padding:valid "
        "layer:conv num-filters:4 filter-shape:4 stride:2 padding:same act:linear bias:True "
        "layer:pool-max kernel-size:2 stride:2 padding:valid layer:dropout rate:0.5 "
        "layer:fc num-units:12 act:linear bias:True"),
    "two-convs_bn_pool-avg-same_fc-sigmoid": (
        "layer:conv num-filters:3 filter-shape:2 stride:2 padding:same act:relu bias:True layer:batch-norm "
        "layer:conv num-filters:4 filter-shape:3 stride:2 padding:valid act:relu bias:True "
        "layer:pool-avg kernel-size:2 stride:2 padding:same layer:fc num-units:10 act:sigmoid bias:True"),
}

#: Runs in .venv (torch): argv = cases directory; reads cases.json, writes results.json.
TORCH_SCRIPT = r"""
import json, sys
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
from spiking.models.phenotype_torch import build_torch_model, load_keras_weights, read_weights_npz
d = Path(sys.argv[1]); results = {}
for name, case in json.loads((d / "cases.json").read_text()).items():
    net = build_torch_model(case["phenotype"], case["L"], case["n_classes"])
    load_keras_weights(net, read_weights_npz(d / case["weights"])).eval()
    data = np.load(d / case["data"])
    with torch.no_grad():
        y = net(torch.from_numpy(data["x"][:, None, :])).numpy()
    results[name] = {"max_abs_diff": float(np.abs(y - data["logits"]).max()),
                     "argmax": y.argmax(1).tolist(), "shape": list(y.shape)}
(d / "results.json").write_text(json.dumps(results))
print(json.dumps({k: v["max_abs_diff"] for k, v in results.items()}))
"""


def _randomise(model: tf.keras.Model, rng: np.random.Generator) -> None:
    """Random biases and batch-norm parameters/statistics (so BN is not the identity); kernels keep
    their Glorot initialisation (logits of order 1)."""
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            c = ws[0].shape
            ws = [rng.uniform(0.5, 1.5, c), rng.normal(0.0, 0.3, c), rng.normal(0.0, 0.3, c), rng.uniform(0.3, 2.0, c)]
        else:
            ws = [ws[0]] + [rng.normal(0.0, 0.2, w.shape) for w in ws[1:]]
        layer.set_weights([w.astype(np.float32) for w in ws])


@pytest.fixture(scope="module")
def torch_results(tmp_path_factory):
    """Keras logits per phenotype, and the torch subprocess's results on the same inputs."""
    if not TORCH_PYTHON.exists():
        pytest.fail(f"the torch environment's interpreter {TORCH_PYTHON} is missing: `make install` builds it")
    d = tmp_path_factory.mktemp("keras_to_torch")
    rng = np.random.default_rng(0)
    cases, keras = {}, {}
    for i, (name, layers) in enumerate(PHENOTYPES.items()):
        ph = f"{layers} {LEARN}"
        model = build_keras_model(parse_phenotype(ph), L, N_CLASSES, seed=i)
        _randomise(model, rng)
        x = rng.uniform(0.0, 1.0, (N_SAMPLES, L)).astype(np.float32)
        logits = model(x[:, :, None], training=False).numpy()
        np.savez(d / f"w{i}.npz", *model.get_weights())
        np.savez(d / f"d{i}.npz", x=x, logits=logits)
        cases[name] = {"phenotype": ph, "L": L, "n_classes": N_CLASSES, "weights": f"w{i}.npz", "data": f"d{i}.npz"}
        keras[name] = logits
    (d / "cases.json").write_text(json.dumps(cases))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    # cwd = repo root: `python -c` puts it on sys.path, so `spiking` imports even without the editable install
    proc = subprocess.run([str(TORCH_PYTHON), "-c", TORCH_SCRIPT, str(d)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"torch subprocess failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"keras": keras, "torch": json.loads((d / "results.json").read_text())}


@pytest.mark.parametrize("name", list(PHENOTYPES))
def test_keras_weights_give_the_same_logits_in_torch(torch_results, name):
    keras, res = torch_results["keras"][name], torch_results["torch"][name]
    assert res["shape"] == [N_SAMPLES, N_CLASSES]
    assert np.abs(keras).max() > 0.05  # a non-degenerate network
    assert res["max_abs_diff"] < 1e-4, res["max_abs_diff"]
    assert res["argmax"] == keras.argmax(1).tolist()
