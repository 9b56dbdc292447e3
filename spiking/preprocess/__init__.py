"""Preprocessing: class selection, leak-free split, scaling fitted on train."""

from .classes import top_k_classes
from .scaling import make_preprocessor
from .split import Split, stratified_split

__all__ = ["top_k_classes", "make_preprocessor", "Split", "stratified_split"]
