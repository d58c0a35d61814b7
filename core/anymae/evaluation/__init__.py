"""Downstream evaluation: linear probe, k-NN and fine-tuning of any encoder, few-label data, and the pretrained
encoder as a plain module."""

from ..model.pretrained import EncoderOutput, EncoderSource, PretrainedEncoder, load_encoder, resolve_checkpoint
from .data import FewLabels, dataset_labels, few_label_indices
from .protocols import FineTune, FineTuneAdamW, KNNClassifier, LinearProbe, ProbeLARS, knn_predict

__all__ = [
    "EncoderOutput",
    "EncoderSource",
    "FewLabels",
    "FineTune",
    "FineTuneAdamW",
    "KNNClassifier",
    "LinearProbe",
    "PretrainedEncoder",
    "ProbeLARS",
    "dataset_labels",
    "few_label_indices",
    "knn_predict",
    "load_encoder",
    "resolve_checkpoint",
]
