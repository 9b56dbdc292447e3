"""PyTorch networks built from grammar-search phenotypes, with Keras/TensorFlow semantics.

:func:`build_torch_model` turns a phenotype (:mod:`spiking.search.phenotype`) into a
:class:`PhenotypeNet` that is the same architecture as the Keras network built from the
same phenotype (:mod:`spiking.models.phenotype_keras`), layer for layer:

* input ``(batch, 1, L)`` float32 (PyTorch channels first; Keras takes ``(batch, L, 1)``),
  output ``(batch, n_classes)`` logits (Keras ends with softmax; apply it to compare);
* ``conv``: ``Conv1d(k=filter-shape, stride, bias)`` + activation (``linear`` = identity);
* ``pool-max`` / ``pool-avg``: ``kernel-size``, ``stride`` as given;
* ``padding:valid``: no padding; ``padding:same``: TensorFlow's rule
  (``tf.nn.convolution`` / ``tf.nn.pool`` docs, "same" padding): ``out = ceil(n / s)``,
  ``pad_total = max((out - 1) * s + k - n, 0)``, ``left = pad_total // 2``, ``right =
  pad_total - left`` (the extra cell goes right). Conv pads with zeros; max pooling ignores
  the padded cells (pads with ``-inf``); average pooling averages only the valid cells
  (TF's behaviour, PyTorch ``count_include_pad=False``);
* ``batch-norm``: ``BatchNorm1d(eps=1e-3, momentum=0.01)`` per channel (Keras
  ``BatchNormalization`` defaults ``epsilon=1e-3, momentum=0.99``; PyTorch's momentum is
  1 - Keras');
* ``dropout``: ``nn.Dropout(rate)`` (elementwise, as Keras ``Dropout``);
* before the first ``fc`` (or the output if there is none) the ``(batch, C, n)`` features
  are permuted to Keras' channels-last ``(batch, n, C)`` and flattened, so a Keras
  ``Dense`` kernel ``(n*C, units)`` is the transpose of the PyTorch ``Linear`` weight;
* ``fc``: ``Linear(num-units, bias)`` + activation; the output: ``Linear(n_classes)`` with bias.

Weights are initialised as Keras does by default (``init="keras"``: Glorot-uniform kernels,
zero biases) or with PyTorch's defaults (``init="torch"``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..search.phenotype import Phenotype, PhenotypeError, parse_phenotype

__all__ = ["PhenotypeNet", "build_torch_model", "torch_parameter_count", "same_padding"]


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
            raise ValueError(f"pool kind must be max or avg, got {kind!r}")
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
            raise ValueError(f"init must be 'keras' or 'torch', got {init!r}")
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
