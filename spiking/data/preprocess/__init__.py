"""Preprocessing: class selection, leak-free split, scaling fitted on train."""

from spiking.data.preprocess.classes import top_k_classes
from spiking.data.preprocess.scaling import make_preprocessor
from spiking.data.preprocess.split import Split, stratified_split

__all__ = ["top_k_classes", "make_preprocessor", "Split", "stratified_split"]
