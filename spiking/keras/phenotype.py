"""Keras networks built from grammar-search phenotypes (the study's second pipeline).

Details: docs/modules.md, section ``spiking.keras.phenotype``.
"""

from __future__ import annotations

import tensorflow as tf

from spiking.specs.phenotype import LearningSpec, Phenotype, PhenotypeError, parse_phenotype

__all__ = ["ACTIVATION_FUNCTIONS", "build_keras_model", "compile_model", "make_optimizer", "layer_name"]

#: Phenotype ``act`` value -> Keras activation (``None`` = linear).
ACTIVATION_FUNCTIONS = {"linear": None, "relu": tf.nn.relu, "sigmoid": tf.nn.sigmoid}


def layer_name(kind: str, index: int) -> str:
    """Keras layer name of phenotype layer ``index`` of kind ``kind`` (e.g. ``("pool-max", 2)`` ->
    ``"pool_max_2"``)."""
    return f"{kind.replace('-', '_')}_{index}"


def build_keras_model(phenotype: Phenotype | str, L: int, n_classes: int, seed: int = 0) -> tf.keras.Model:
    """Build the (uncompiled) Keras functional model of a phenotype.

    Args:
        phenotype: a parsed :class:`~spiking.specs.phenotype.Phenotype` or its string.
        L: input length (number of features); the model's input has shape ``(batch, L, 1)``.
        n_classes: number of classes; the output has shape ``(batch, n_classes)`` (logits).
        seed: seeds the weight initialisers and dropout masks (via
            ``tf.keras.utils.set_random_seed``, which also seeds Python's and NumPy's
            global generators), so the same arguments give the same initial weights.

    Returns:
        The model, named ``"phenotype"``. Its ``count_params()`` equals
        ``phenotype.count_parameters(L, n_classes)`` (checked).

    Raises:
        PhenotypeError: the phenotype does not parse, does not fit length ``L``
            (a ``valid`` window longer than its input), or ``n_classes < 2``.
    """
    ph = parse_phenotype(phenotype) if isinstance(phenotype, str) else phenotype
    if n_classes < 2:
        raise PhenotypeError(f"n_classes must be >= 2, got {n_classes}")
    ph.shapes(L)  # raises PhenotypeError when a length drops below 1
    tf.keras.utils.set_random_seed(int(seed))
    flat_at = ph.flatten_index()
    inp = tf.keras.Input(shape=(int(L), 1), name="input")
    x = inp
    for i, spec in enumerate(ph.layers):
        p, name = spec.params, layer_name(spec.kind, i)
        if i == flat_at:
            x = tf.keras.layers.Flatten(name="flatten")(x)
        if spec.kind == "conv":
            x = tf.keras.layers.Conv1D(p["num-filters"], p["filter-shape"], strides=p["stride"],
                                       padding=p["padding"], activation=ACTIVATION_FUNCTIONS[p["act"]],
                                       use_bias=p["bias"], name=name)(x)
        elif spec.kind == "pool-max":
            x = tf.keras.layers.MaxPooling1D(p["kernel-size"], strides=p["stride"], padding=p["padding"],
                                             name=name)(x)
        elif spec.kind == "pool-avg":
            x = tf.keras.layers.AveragePooling1D(p["kernel-size"], strides=p["stride"], padding=p["padding"],
                                                 name=name)(x)
        elif spec.kind == "dropout":
            x = tf.keras.layers.Dropout(p["rate"], seed=int(seed) + i, name=name)(x)
        elif spec.kind == "batch-norm":
            x = tf.keras.layers.BatchNormalization(name=name)(x)
        elif spec.kind == "fc":
            x = tf.keras.layers.Dense(p["num-units"], activation=ACTIVATION_FUNCTIONS[p["act"]],
                                      use_bias=p["bias"], name=name)(x)
        else:  # parse_phenotype only yields known kinds
            raise PhenotypeError(f"unknown layer kind {spec.kind!r}")
    if flat_at == len(ph.layers):
        x = tf.keras.layers.Flatten(name="flatten")(x)
    out = tf.keras.layers.Dense(n_classes, activation=None, name="logits")(x)
    model = tf.keras.Model(inp, out, name="phenotype")
    expected = ph.count_parameters(L, n_classes)
    if model.count_params() != expected:  # a bug here, never a user error
        raise AssertionError(f"Keras model has {model.count_params()} parameters, the phenotype "
                             f"counts {expected}")
    return model


def make_optimizer(learning: LearningSpec) -> tf.keras.optimizers.Optimizer:
    """The optimiser of a phenotype's learning block.

    ``gradient-descent`` -> ``SGD(lr, momentum, nesterov)``, ``rmsprop`` -> ``RMSprop(lr, rho)``,
    ``adam`` -> ``Adam(lr, beta_1=beta1, beta_2=beta2)``. Fast-DENSER's (old Keras) ``decay``
    ``d`` — learning rate ``lr / (1 + d * iterations)`` — is reproduced by
    ``InverseTimeDecay(lr, decay_steps=1, decay_rate=d)`` (a constant rate when ``d == 0``).

    Raises:
        PhenotypeError: an unknown optimiser name or a negative decay.
    """
    p = learning.params
    decay = float(p.get("decay", 0.0))
    if decay < 0:
        raise PhenotypeError(f"decay must be >= 0, got {decay}")
    lr = float(p["lr"])
    rate = (tf.keras.optimizers.schedules.InverseTimeDecay(lr, decay_steps=1, decay_rate=decay)
            if decay > 0 else lr)
    if learning.optimiser == "gradient-descent":
        return tf.keras.optimizers.SGD(rate, momentum=float(p["momentum"]), nesterov=bool(p["nesterov"]))
    if learning.optimiser == "rmsprop":
        return tf.keras.optimizers.RMSprop(rate, rho=float(p["rho"]))
    if learning.optimiser == "adam":
        return tf.keras.optimizers.Adam(rate, beta_1=float(p["beta1"]), beta_2=float(p["beta2"]))
    raise PhenotypeError(f"unknown optimiser {learning.optimiser!r}")


def compile_model(model: tf.keras.Model, learning: LearningSpec) -> tf.keras.Model:
    """Compile ``model`` in place with the learning block's optimiser (:func:`make_optimizer`),
    ``SparseCategoricalCrossentropy(from_logits=True)`` on integer labels and the
    ``accuracy`` metric. Returns the model.

    Raises:
        PhenotypeError: see :func:`make_optimizer`.
    """
    model.compile(optimizer=make_optimizer(learning),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model
