"""Downstream evaluation: linear probe (``probe.py``), k-NN (``knn.py``) and fine-tuning (``finetune.py``) of any
encoder (what they share: ``protocol.py``), few-label data (``data.py``), and export to other formats
(``export.py``). The pretrained encoder as a plain module is :mod:`anymae.model.pretrained`."""

from ..model.pretrained import Features, PretrainedEncoder, load_encoder, resolve_checkpoint
from .data import FewLabels, dataset_labels, few_label_indices
from .finetune import FineTune, FineTuneAdamW
from .knn import KNNClassifier, knn_predict
from .probe import LinearProbe, ProbeLARS
from .protocol import EncoderSource
from .retrieval import CrossModalRetrieval, recall_at

__all__ = [
    "CrossModalRetrieval",
    "EncoderSource",
    "Features",
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
    "recall_at",
    "resolve_checkpoint",
]
