"""The parts a masked autoencoder is made of, and what flows between them.

``types.py`` (tokens, masks, the encoder's output, the build context) · ``tokenizer.py`` · ``layers.py`` ·
``position.py`` · ``encoder.py`` · ``decoders`` · ``targets`` · ``pretrained.py`` (a trained encoder as a plain
module). Nothing here imports the masking, training, data, evaluation, plugin or command code above it.
"""
