"""Learned and data-aware maskers (AdaMAE, HPM, AttMask): the only masking code that may import the model's
encoder, layers and decoders."""
