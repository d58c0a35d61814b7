"""Maskers: which tokens the encoder sees (and, with decoder masking, which the decoder predicts).

One module per masker family; every masker draws per-token noise on the tokens' device and keeps the lowest
(see :mod:`anymae.masking.base`).
"""
