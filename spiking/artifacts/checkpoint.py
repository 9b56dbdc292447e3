"""Saved networks (``cnn.pt``, ``snn*.pt``, a trial's ``checkpoint.pt``): their names in a run folder,
the metadata that rebuilds them, and the inputs laid out as each was trained."""

from __future__ import annotations

from pathlib import Path

import torch

from spiking.artifacts import ArtifactError
from spiking.models.build import build_cnn, build_spiking_cnn
from spiking.models.cnn import CNNArch
from spiking.models.encoding import DELTA_THRESHOLD


def input_meta(prep) -> dict:
    """What a saved network needs to be fed: ``L`` (features), ``input_shape`` and ``layout`` (state)."""
    return {"L": prep.n_features, "input_shape": list(prep.input_shape), "layout": prep.layout_state()}


def network_meta(kind: str, arch, inputs: dict, n_classes: int, *, snn: dict | None = None,
                 transferred=(), scales=None, percentile=None, split_sha256: str | None = None,
                 weights_source: str | None = None, activation: str = "relu", levels: int | None = None) -> dict:
    """The metadata saved with every network (``cnn.pt``, ``snn*.pt``, a trial's ``checkpoint.pt``):
    what :func:`model_from_checkpoint` needs to rebuild it and what the reports show.

    Args:
        kind: ``cnn`` or ``snn``; arch: a ``CNNArch``; inputs: :func:`input_meta`'s dict
            (``L``, ``input_shape``, ``layout``); n_classes: classes.
        snn: for ``kind = "snn"``: ``neuron``, ``beta``, ``num_steps``, ``population``, ``loss``,
            ``mode``, ``encoding``, ``delta_threshold``, ``init_mem`` (membrane at t = 0, in thresholds)
            and ``readout`` (``count|integrated``, ``spiking.training.objectives``).
        transferred: names of the layers copied from the source CNN; scales, percentile: the
            data-based normalisation applied after the transfer (None: none); for a conversion the
            QCFS thresholds.
        activation, levels: for ``kind = "cnn"``: ``relu`` or ``qcfs`` and its levels.
    """
    meta = {"kind": kind, "arch": arch.as_dict(), **inputs, "n_classes": int(n_classes)}
    if kind == "cnn":
        meta["activation"] = activation
        if activation == "qcfs":
            meta["levels"] = int(levels)
    if kind == "snn":
        meta.update({k: snn[k] for k in ("population", "neuron", "beta", "num_steps", "loss", "mode", "encoding",
                                        "delta_threshold")})
        meta["init_mem"] = float(snn.get("init_mem", 0.0))
        meta["readout"] = snn.get("readout", "count")
        meta["transferred"] = list(transferred)
        meta["normalization"] = {"scales": scales, "percentile": percentile} if scales else None
        if weights_source is not None:
            meta["weights_source"] = weights_source
    meta["split_sha256"] = split_sha256
    return meta


def save_network(path: str | Path, model: torch.nn.Module, meta: dict, *, on_cpu: bool = False, **extra) -> Path:
    """Write a network: its ``state_dict`` (copied to the CPU with ``on_cpu``), ``meta``
    (:func:`network_meta`) and ``extra`` keys (``train_seconds``, ``best_epoch``; a trial's
    checkpoint adds ``optimizer``, ``epoch``, ``config``, ``history``...)."""
    state = model.state_dict()
    if on_cpu:
        state = {k: (v.detach().cpu().clone() if torch.is_tensor(v) else v) for k, v in state.items()}
    torch.save({"state_dict": state, **meta, **extra}, path)
    return Path(path)


def read_checkpoint(source, device: str = "cpu") -> dict:
    """Read what :func:`save_network` wrote (a path or a binary file object), with ``torch.load``'s
    ``weights_only=True``: tensors and plain Python values only, never arbitrary pickled objects.

    Raises:
        OSError: the file cannot be opened; Exception (``pickle.UnpicklingError``, ``RuntimeError``...):
            not a saved network. Callers turn the latter into their own message.
    """
    return torch.load(source, map_location=device, weights_only=True)


def snn_name(encoding: str) -> str:
    """File stem of the run's spiking network for ``encoding``: ``snn`` (direct current) or ``snn_<encoding>``."""
    return "snn" if encoding == "direct" else f"snn_{encoding}"


def model_from_checkpoint(ckpt: dict):
    """Rebuild the network described by a saved checkpoint dict (``cnn.pt``/``snn*.pt`` contents or a
    search trial's ``checkpoint.pt``), weights loaded, in eval mode. 1-D or 2-D by ``input_shape``
    (a network saved before layouts existed has none: ``[L]``).

    A network saved before QCFS existed has no ``activation`` (ReLU), ``init_mem`` (0) or ``readout``
    (spike counts).

    Raises:
        KeyError: the dict lacks ``kind``, ``arch``, ``L``, ``n_classes`` or ``state_dict``.
    """
    arch = CNNArch.from_dict(ckpt["arch"])
    shape = tuple(ckpt.get("input_shape") or (ckpt["L"],))
    if ckpt["kind"] == "cnn":
        activation = ckpt.get("activation", "relu")
        extra = {"activation": activation, "levels": int(ckpt["levels"])} if activation != "relu" else {}
        model = build_cnn(shape, arch, ckpt["n_classes"], **extra)
    else:
        extra = {"init_mem": float(ckpt["init_mem"])} if ckpt.get("init_mem") else {}
        model = build_spiking_cnn(shape, arch, ckpt["n_classes"] * ckpt["population"], neuron=ckpt["neuron"],
                                  beta=ckpt["beta"], num_steps=ckpt["num_steps"],
                                  encoding=ckpt.get("encoding", "direct"),
                                  delta_threshold=ckpt.get("delta_threshold", DELTA_THRESHOLD)
                                  if len(shape) == 1 else None, **extra)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model


def load_model(path: str | Path, device: str = "cpu"):
    """Rebuild a saved network from ``cnn.pt`` or ``snn*.pt``; returns ``(model, meta)``.

    Raises:
        ValueError: the file cannot be read as a saved network (message names the file).
        OSError: the file cannot be opened.
    """
    try:
        ckpt = read_checkpoint(path, device)
    except OSError:
        raise
    except Exception as e:  # truncated zip, pickle garbage, empty file...
        raise ArtifactError(f"{path}: not a saved network ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") not in ("cnn", "snn"):
        raise ArtifactError(f"{path}: not a saved network (no 'kind' cnn/snn in it)")
    try:
        return model_from_checkpoint(ckpt), ckpt
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ArtifactError(f"{path}: cannot rebuild the network ({type(e).__name__}: {e})") from None


def network_layout(meta: dict):
    """The fitted layout a saved network was trained on (``meta["layout"]``), or None for file
    order (identity; also every network saved before layouts existed).

    Raises:
        ValueError: a damaged layout state, or one whose image shape is not the network's input shape.
    """
    from spiking.data.layout.state import layout_from_state

    state = meta.get("layout")
    if state is None:
        return None
    if not isinstance(state, dict):
        raise ArtifactError(f"the network's saved layout is damaged (a {type(state).__name__}, not a layout)")
    layout = layout_from_state(state)
    takes = list(meta.get("input_shape") or [meta.get("L")])
    if list(layout.shape_) != takes:
        raise ArtifactError(f"saved layout {state.get('name')} makes {list(layout.shape_)} images, but the network "
                         f"takes {takes}")
    return None if state.get("name") == "identity" else layout


def network_inputs(meta: dict, prep, part: str):
    """The rows of ``prep``'s ``part`` laid out as the saved network (``meta``) was trained: its own
    layout applied to the scaled features, whatever layout ``prep`` was made with.

    Returns float32 ``(n, 1, *input_shape)``. Raises ValueError when the network's layout was
    fitted on another number of features.
    """
    layout = network_layout(meta)
    feats = prep.features(part)
    if layout is None:
        if meta.get("L") not in (None, feats.shape[1]):
            raise ArtifactError(f"network for {meta.get('L')} features, data has {feats.shape[1]}")
        return feats[:, None, :]
    if layout.n_features_in_ != feats.shape[1]:
        raise ArtifactError(f"the network's {meta['layout']['name']} layout places {layout.n_features_in_} features, "
                         f"the data has {feats.shape[1]}")
    return layout.transform(feats)
