"""Targets, one file each around the interface (``base.py``): raw patch values (``patch.py``), what the tokenizer
provides per token (``provided.py``), a weighted sum of targets (``weighted.py``) and a frozen teacher's features
(``teacher.py``)."""
