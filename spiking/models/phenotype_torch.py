"""PyTorch networks built from grammar-search phenotypes, with Keras/TensorFlow semantics.

Details: docs/modules.md, section ``spiking.models.phenotype_torch``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spiking.models import ModelError
from spiking.specs.phenotype import Phenotype, PhenotypeError, parse_phenotype

__all__ = ["PhenotypeNet", "build_torch_model", "torch_parameter_count", "same_padding", "load_keras_weights",
           "read_weights_npz"]


def same_padding(n: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding ``(left, right)`` (cells) for input length ``n``.

    ``out = ceil(n / stride)``, ``total = max((out - 1) * stride + kernel - n, 0)``,
    ``left = total // 2``, ``right = total - left`` (source: TensorFlow
    ``tf.nn.convolution`` documentation, padding algorithm).
    """
    out = -(-n // stride)
    total = max((out - 1) * stride + kernel - n, 0)
    return total // 2, total - total // 2


_ACTS = {"linear": nn.Identity, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class SameConv1d(nn.Module):
    """``Conv1d`` with padding ``same`` (TF rule, zeros) or ``valid``: (B, C_in, n) -> (B, C_out, n_out)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: str, bias: bool):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=bias)
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            x = F.pad(x, same_padding(x.shape[-1], self.kernel, self.stride))
        return self.conv(x)


class Pool1d(nn.Module):
    """Max or average pooling with TF padding: (B, C, n) -> (B, C, n_out).

    ``same``: max pooling pads with ``-inf`` (padded cells never win); average pooling divides
    each window's sum by its number of valid cells (TF ``avg_pool``; PyTorch
    ``count_include_pad=False``). Every TF 'same' window holds at least one valid cell.
    """

    def __init__(self, kind: str, kernel: int, stride: int, padding: str):
        super().__init__()
        if kind not in ("max", "avg"):
            raise ModelError(f"pool kind must be max or avg, got {kind!r}")
        self.kind, self.kernel, self.stride, self.padding = kind, kernel, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel, self.stride
        if self.padding != "same":
            return F.max_pool1d(x, k, s) if self.kind == "max" else F.avg_pool1d(x, k, s)
        pad = same_padding(x.shape[-1], k, s)
        if self.kind == "max":
            return F.max_pool1d(F.pad(x, pad, value=-math.inf), k, s)
        sums = F.avg_pool1d(F.pad(x, pad), k, s) * k
        ones = torch.ones(1, 1, x.shape[-1], dtype=x.dtype, device=x.device)
        counts = F.avg_pool1d(F.pad(ones, pad), k, s) * k
        return sums / counts

    def extra_repr(self) -> str:
        return f"kind={self.kind}, kernel={self.kernel}, stride={self.stride}, padding={self.padding}"


class KerasFlatten(nn.Module):
    """(B, C, n) -> (B, n*C) in Keras channels-last order (index ``i*C + c``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 1).reshape(x.shape[0], -1)


class PhenotypeNet(nn.Module):
    """The network of one phenotype (module docstring): (B, 1, L) float32 -> (B, n_classes) logits.

    Attributes: ``phenotype`` (:class:`Phenotype`), ``L``, ``n_classes``, ``body``
    (``nn.Sequential``: the layers, the Keras-order flatten, the output ``Linear``).
    """

    def __init__(self, phenotype: Phenotype, L: int, n_classes: int, init: str = "keras"):
        super().__init__()
        if init not in ("keras", "torch"):
            raise ModelError(f"init must be 'keras' or 'torch', got {init!r}")
        phenotype.shapes(L)  # raises PhenotypeError when the network does not fit L
        self.phenotype, self.L, self.n_classes = phenotype, int(L), int(n_classes)
        mods: list[nn.Module] = []
        n, c = int(L), 1
        flat: int | None = None
        for layer in phenotype.layers:
            p = layer.params
            if flat is None and layer.kind == "fc":
                mods.append(KerasFlatten())
                flat = n * c
            if layer.kind == "conv":
                mods.append(SameConv1d(c, p["num-filters"], p["filter-shape"], p["stride"], p["padding"], p["bias"]))
                mods.append(_ACTS[p["act"]]())
                n, c = _out_len(n, p["filter-shape"], p["stride"], p["padding"]), p["num-filters"]
            elif layer.kind in ("pool-max", "pool-avg"):
                mods.append(Pool1d(layer.kind[5:], p["kernel-size"], p["stride"], p["padding"]))
                n = _out_len(n, p["kernel-size"], p["stride"], p["padding"])
            elif layer.kind == "batch-norm":
                mods.append(nn.BatchNorm1d(c, eps=1e-3, momentum=0.01))
            elif layer.kind == "dropout":
                mods.append(nn.Dropout(p["rate"]))
            elif layer.kind == "fc":
                mods.append(nn.Linear(flat, p["num-units"], bias=p["bias"]))
                mods.append(_ACTS[p["act"]]())
                flat = p["num-units"]
            else:  # pragma: no cover - parse_phenotype rejects unknown kinds
                raise PhenotypeError(f"unknown layer kind {layer.kind!r}")
        if flat is None:
            mods.append(KerasFlatten())
            flat = n * c
        mods.append(nn.Linear(flat, self.n_classes))
        self.body = nn.Sequential(*mods)
        if init == "keras":
            for m in self.body.modules():
                if isinstance(m, (nn.Conv1d, nn.Linear)):
                    nn.init.xavier_uniform_(m.weight)  # fans: in*k / out*k, as Keras' glorot_uniform
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, 1, L) float32 -> logits (B, n_classes)."""
        return self.body(x)


def _out_len(n: int, k: int, s: int, padding: str) -> int:
    return -(-n // s) if padding == "same" else (n - k) // s + 1


def build_torch_model(phenotype: Phenotype | str, L: int, n_classes: int, init: str = "keras") -> PhenotypeNet:
    """Build the PyTorch network of ``phenotype`` (a :class:`Phenotype` or its string) for input
    length ``L`` and ``n_classes`` outputs: (B, 1, L) float32 -> (B, n_classes) logits.

    ``init``: ``"keras"`` (Glorot-uniform kernels, zero biases, the Keras defaults) or
    ``"torch"`` (PyTorch's default initialisation).

    Raises:
        PhenotypeError: unparsable phenotype or a network that does not fit ``L``.
        ValueError: unknown ``init``.
    """
    if isinstance(phenotype, str):
        phenotype = parse_phenotype(phenotype)
    return PhenotypeNet(phenotype, L, n_classes, init=init)


def torch_parameter_count(model: nn.Module) -> int:
    """Parameters in the Keras ``count_params()`` convention: trainable parameters plus the
    running mean and variance of every batch-norm layer (Keras counts its moving statistics).
    Equals ``Phenotype.count_parameters(L, n_classes)`` for a :class:`PhenotypeNet`."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            total += m.running_mean.numel() + m.running_var.numel()
    return total


def _keras_weight_plan(model: PhenotypeNet) -> list[tuple[str, str, torch.Tensor, tuple[int, ...], str]]:
    """The arrays ``keras_model.get_weights()`` holds for ``model``'s phenotype, in order:
    ``(keras layer name, weight name, torch tensor to fill, expected Keras shape, transform)``."""
    convs = [m.conv for m in model.body if isinstance(m, SameConv1d)]
    bns = [m for m in model.body if isinstance(m, nn.BatchNorm1d)]
    linears = [m for m in model.body if isinstance(m, nn.Linear)]
    plan: list[tuple[str, str, torch.Tensor, tuple[int, ...], str]] = []

    def dense(name: str, lin: nn.Linear) -> None:
        plan.append((name, "kernel", lin.weight, (lin.in_features, lin.out_features), "T"))
        if lin.bias is not None:
            plan.append((name, "bias", lin.bias, (lin.out_features,), ""))

    for i, spec in enumerate(model.phenotype.layers):
        name = f"{spec.kind.replace('-', '_')}_{i}"  # phenotype_keras.layer_name
        if spec.kind == "conv":
            conv = convs.pop(0)
            f, c_in, k = conv.weight.shape
            plan.append((name, "kernel", conv.weight, (k, c_in, f), "conv"))
            if conv.bias is not None:
                plan.append((name, "bias", conv.bias, (f,), ""))
        elif spec.kind == "batch-norm":
            bn = bns.pop(0)
            c = bn.num_features
            for wname, t in (("gamma", bn.weight), ("beta", bn.bias), ("moving_mean", bn.running_mean),
                             ("moving_variance", bn.running_var)):
                plan.append((name, wname, t, (c,), ""))
        elif spec.kind == "fc":
            dense(name, linears.pop(0))
    dense("logits", linears.pop(0))
    if convs or bns or linears:  # pragma: no cover - PhenotypeNet builds one module per layer
        raise AssertionError("PhenotypeNet modules do not match its phenotype")
    return plan


def load_keras_weights(model: PhenotypeNet, weights: Sequence[np.ndarray]) -> PhenotypeNet:
    """Copy the weights of the equivalent Keras model into ``model`` (in place) and return it.

    ``weights`` is what ``keras_model.get_weights()`` returns for the Keras network of the same
    phenotype, ``L`` and ``n_classes`` (:func:`spiking.keras.phenotype.build_keras_model`):
    one list of arrays in layer order, each layer's arrays in Keras' own order (Keras layer
    ``build()`` creates them in this order; these are the layouts of ``Conv1D``,
    ``BatchNormalization`` and ``Dense`` in Keras 2)::

        conv_i        Conv1D kernel (k, c_in, f)          -> Conv1d.weight (f, c_in, k)  [transposed]
                      [bias (f,) if bias:True]             -> Conv1d.bias
        batch_norm_i  gamma (C,), beta (C,)                -> BatchNorm1d.weight, .bias
                      moving_mean (C,), moving_variance (C,) -> .running_mean, .running_var
        fc_i          Dense kernel (in, out)               -> Linear.weight (out, in)    [transposed]
                      [bias (out,) if bias:True]           -> Linear.bias
        logits        Dense kernel (in, n_classes), bias (n_classes,) -> the output Linear

    Pooling, dropout and flatten layers have no weights. The flatten order already matches
    (channels last, :class:`KerasFlatten`), so the first dense kernel needs no reordering. Values
    are cast to each tensor's dtype (float32). ``num_batches_tracked`` is left as it is.
    Put the model in ``eval()`` mode to use the moving statistics, as Keras' ``training=False``.

    Everything is checked before anything is copied: on an error ``model`` is unchanged.

    Raises:
        TypeError: ``model`` is not a :class:`PhenotypeNet`.
        ValueError: the number of arrays differs from what the network needs, or an array's
            shape differs from the expected Keras shape; the message names the Keras layer
            (e.g. ``conv_0``, ``batch_norm_2``, ``fc_4``, ``logits``) and the weight.
    """
    if not isinstance(model, PhenotypeNet):
        raise TypeError(f"model must be a PhenotypeNet, got {type(model).__name__}")
    plan = _keras_weight_plan(model)
    arrays = [np.asarray(w) for w in weights]
    counts = f"got {len(arrays)} arrays, the network needs {len(plan)}"
    for j, (name, wname, _, shape, _) in enumerate(plan):
        if j >= len(arrays):
            raise ModelError(f"too few weight arrays: {counts}; layer {name!r} {wname} "
                             f"(array {j}, Keras shape {shape}) and the rest are missing")
        if tuple(arrays[j].shape) != shape:
            hint = f" ({counts}: one missing or extra?)" if len(arrays) != len(plan) else ""
            raise ModelError(f"layer {name!r} {wname} (array {j}): expected Keras shape {shape}, "
                             f"got {tuple(arrays[j].shape)}{hint}")
    if len(arrays) > len(plan):
        raise ModelError(f"too many weight arrays: {counts} (the last is layer 'logits' bias, "
                         f"array {len(plan) - 1})")
    with torch.no_grad():
        for (name, wname, tensor, _, how), w in zip(plan, arrays):
            if how == "conv":
                w = w.transpose(2, 1, 0)
            elif how == "T":
                w = w.T
            tensor.copy_(torch.as_tensor(np.ascontiguousarray(w), dtype=tensor.dtype))
    return model


def read_weights_npz(path: str | os.PathLike) -> list[np.ndarray]:
    """The arrays of an ``.npz`` written by ``np.savez(path, *keras_model.get_weights())``, in
    their order (``arr_0``, ``arr_1``, ..., ``arr_{n-1}``), ready for :func:`load_keras_weights`.

    Raises:
        ValueError: the file holds other names than ``arr_0..arr_{n-1}`` (e.g. keyword arrays).
        OSError: the file cannot be read.
    """
    with np.load(path, allow_pickle=False) as data:
        names = list(data.files)
        expected = [f"arr_{i}" for i in range(len(names))]
        if sorted(names) != sorted(expected):
            raise ModelError(f"{path}: expected arrays arr_0..arr_{len(names) - 1} "
                             f"(np.savez(path, *weights)), found {sorted(names)}")
        return [data[n] for n in expected]
