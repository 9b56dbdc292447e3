"""Keras networks of phenotypes (spiking.keras.phenotype) and their training (spiking.keras.fit)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from spiking.evaluation.metrics import classification_metrics
from spiking.keras.fit import as_keras_input, fit_keras, load_keras, save_keras
from spiking.keras.phenotype import build_keras_model, compile_model, make_optimizer
from spiking.specs.phenotype import PhenotypeError, parse_phenotype

LEARN = "learning:adam lr:0.001 beta1:0.9 beta2:0.999 decay:0.0 early_stop:3 batch_size:16"

#: Phenotypes covering every layer kind and geometry (conv valid/same with strides, both pools
#: with same/valid, dropout, batch-norm, fc, no fc, every activation, with and without bias).
PHENOTYPES = {
    "conv-valid-stride_pool-max-valid_bn_dropout_fc": (
        "layer:conv num-filters:32 filter-shape:8 stride:2 padding:valid act:relu bias:True "
        "layer:pool-max kernel-size:4 stride:2 padding:valid layer:batch-norm layer:dropout rate:0.3 "
        "layer:fc num-units:256 act:relu bias:True"),
    "conv-same-stride3_pool-avg-same_no-fc": (
        "layer:conv num-filters:6 filter-shape:5 stride:3 padding:same act:sigmoid bias:False "
        "layer:pool-avg kernel-size:3 stride:2 padding:same"),
    "pool-max-same-first_conv-linear_pool-avg-valid_two-fc": (
        "layer:pool-max kernel-size:3 stride:3 padding:same "
        "layer:conv num-filters:4 filter-shape:3 stride:1 padding:valid act:linear bias:True "
        "layer:pool-avg kernel-size:2 stride:2 padding:valid layer:batch-norm "
        "layer:fc num-units:16 act:sigmoid bias:False layer:dropout rate:0.5 layer:fc num-units:8 act:relu bias:True"),
    "fc-only": "layer:fc num-units:10 act:relu bias:True",
    "no-layers": "",
    "two-convs-same-even-kernel": (
        "layer:conv num-filters:3 filter-shape:4 stride:2 padding:same act:relu bias:True "
        "layer:batch-norm layer:conv num-filters:5 filter-shape:2 stride:2 padding:same act:relu bias:True"),
}


@pytest.mark.parametrize("name", list(PHENOTYPES))
def test_parameter_count_and_shapes_match_the_phenotype(name):
    ph = parse_phenotype(f"{PHENOTYPES[name]} {LEARN}")
    L, n_classes = 101, 5
    model = build_keras_model(ph, L, n_classes, seed=0)
    assert model.count_params() == ph.count_parameters(L, n_classes)
    assert model.input_shape == (None, L, 1) and model.output_shape == (None, n_classes)
    out = model.get_layer("logits")
    assert out.activation is tf.keras.activations.linear  # logits, softmax lives in the loss
    # one Keras layer per phenotype layer, named kind_index, with the phenotype's output shape
    for i, (spec, shape) in enumerate(zip(ph.layers, ph.shapes(L))):
        layer = model.get_layer(f"{spec.kind.replace('-', '_')}_{i}")
        assert layer.output_shape[1:] == shape
        if spec.kind in ("conv", "fc"):
            want = {"relu": tf.nn.relu, "sigmoid": tf.nn.sigmoid, "linear": tf.keras.activations.linear}
            assert layer.activation is want[spec.params["act"]]
    fi = ph.flatten_index()
    names = [layer.name for layer in model.layers]
    assert names.index("flatten") == 1 + fi  # right before the first fc (or the output)
    before = ph.shapes(L)[fi - 1] if fi > 0 else (L, 1)
    assert model.get_layer("flatten").output_shape[1] == int(np.prod(before))


def test_same_arguments_give_the_same_initial_weights():
    ph = parse_phenotype(f"{PHENOTYPES['conv-valid-stride_pool-max-valid_bn_dropout_fc']} {LEARN}")
    a, b, c = (build_keras_model(ph, 64, 3, seed=s) for s in (7, 7, 8))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_a_network_that_does_not_fit_is_refused():
    ph = parse_phenotype(f"layer:conv num-filters:2 filter-shape:20 stride:1 padding:valid act:relu bias:True {LEARN}")
    with pytest.raises(PhenotypeError, match="valid"):
        build_keras_model(ph, 10, 3)
    with pytest.raises(PhenotypeError):
        build_keras_model(ph, 100, 1)


def test_optimisers_and_old_keras_decay():
    sgd = make_optimizer(parse_phenotype(
        "learning:gradient-descent lr:0.1 momentum:0.8 decay:0.0 nesterov:True early_stop:3 batch_size:8").learning)
    assert isinstance(sgd, tf.keras.optimizers.SGD) and sgd.nesterov and sgd.momentum == pytest.approx(0.8)
    assert float(sgd.learning_rate) == pytest.approx(0.1)
    rms = make_optimizer(parse_phenotype("learning:rmsprop lr:0.01 rho:0.7 decay:0.0 early_stop:3 batch_size:8").learning)
    assert isinstance(rms, tf.keras.optimizers.RMSprop) and rms.rho == pytest.approx(0.7)
    adam = make_optimizer(parse_phenotype(
        "learning:adam lr:0.002 beta1:0.8 beta2:0.99 decay:0.01 early_stop:3 batch_size:8").learning)
    assert isinstance(adam, tf.keras.optimizers.Adam)
    assert adam.beta_1 == pytest.approx(0.8) and adam.beta_2 == pytest.approx(0.99)
    cfg = adam.get_config()["learning_rate"]  # the schedule, serialised
    schedule = tf.keras.optimizers.schedules.deserialize(cfg)
    assert isinstance(schedule, tf.keras.optimizers.schedules.InverseTimeDecay)
    assert schedule.decay_steps == 1 and schedule.decay_rate == pytest.approx(0.01)
    # old Keras: lr / (1 + decay * iterations)
    for step in (0, 1, 10, 1000):
        assert float(schedule(step)) == pytest.approx(0.002 / (1 + 0.01 * step), rel=1e-6)


def test_input_shapes_are_normalised():
    x = np.zeros((4, 7), np.float32)
    for shaped in (x, x[:, None, :], x[:, :, None]):
        assert as_keras_input(shaped).shape == (4, 7, 1)
    with pytest.raises(ValueError):
        as_keras_input(np.zeros((4, 2, 7)))


def test_trained_network_beats_chance_on_real_data(trained, prepared):
    res, model = trained["result"], trained["model"]
    assert res.best_val_accuracy > 0.6  # chance is 0.2 for 5 classes
    assert res.stopped_by in ("early_stop", "max_epochs")
    assert res.epochs == len(res.history["val_accuracy"]) == len(res.history["val_balanced_accuracy"])
    assert res.history["val_accuracy"][res.best_epoch] == res.best_val_accuracy == max(res.history["val_accuracy"])
    # the model holds the best epoch's weights
    x, y = prepared["x"], prepared["y"]
    val_pred = model.predict(as_keras_input(x["val"]), verbose=0).argmax(axis=1)
    assert (val_pred == y["val"]).mean() == pytest.approx(res.best_val_accuracy)
    test_pred = model.predict(as_keras_input(x["test"]), verbose=0).argmax(axis=1)
    m = classification_metrics(y["test"], test_pred, prepared["classes"])
    assert m["balanced_accuracy"] > 0.6


def test_time_budget_stops_training(prepared):
    ph = parse_phenotype(f"{PHENOTYPES['conv-valid-stride_pool-max-valid_bn_dropout_fc']} "
                         "learning:adam lr:0.001 beta1:0.9 beta2:0.999 decay:0.0 early_stop:50 batch_size:8")
    model = compile_model(build_keras_model(ph, prepared["L"], 5, seed=0), ph.learning)
    x, y = prepared["x"], prepared["y"]
    res = fit_keras(model, ph.learning, x["train"], y["train"], x["val"], y["val"], time_budget_s=0.5,
                    max_epochs=10_000, seed=0)
    assert res.stopped_by == "time"
    assert 1 <= res.epochs < 50
    assert res.seconds < 20  # one slow first batch (tracing) at most, never thousands of epochs


def test_max_epochs_and_bad_arguments(prepared):
    ph = parse_phenotype(f"layer:fc num-units:8 act:relu bias:True {LEARN}")
    model = compile_model(build_keras_model(ph, prepared["L"], 5, seed=0), ph.learning)
    x, y = prepared["x"], prepared["y"]
    res = fit_keras(model, ph.learning, x["train"], y["train"], x["val"], y["val"], time_budget_s=60,
                    max_epochs=2, seed=0)
    assert res.stopped_by == "max_epochs" and res.epochs == 2
    with pytest.raises(ValueError):
        fit_keras(model, ph.learning, x["train"], y["train"][:-1], x["val"], y["val"], time_budget_s=1, seed=0)
    with pytest.raises(ValueError):
        fit_keras(build_keras_model(ph, prepared["L"], 5), ph.learning, x["train"], y["train"], x["val"], y["val"],
                  time_budget_s=1, seed=0)


def test_save_load_round_trip_and_continued_training(trained, prepared, tmp_path):
    model, ph = trained["model"], trained["phenotype"]
    x, y = prepared["x"], prepared["y"]
    xt = as_keras_input(x["test"])
    path = save_keras(model, tmp_path / "net" / "model.keras")
    loaded = load_keras(path)
    np.testing.assert_array_equal(model.predict(xt, verbose=0), loaded.predict(xt, verbose=0))
    # the optimiser state came back: Fast-DENSER's "train longer" continues where it stopped
    steps = int(model.optimizer.iterations)
    assert steps > 0 and int(loaded.optimizer.iterations) == steps
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    res = fit_keras(loaded, ph.learning, x["train"], y["train"], x["val"], y["val"], time_budget_s=60,
                    max_epochs=1, seed=1)
    assert res.epochs == 1
    assert int(loaded.optimizer.iterations) == steps + int(np.ceil(len(x["train"]) / ph.learning.batch_size))
    with pytest.raises(ValueError):
        save_keras(model, tmp_path / "model.txt")
    with pytest.raises(FileNotFoundError):
        load_keras(tmp_path / "missing.keras")
