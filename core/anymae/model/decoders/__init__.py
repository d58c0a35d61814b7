"""Decoders, one file each around a shared stem (``base.py``): MAE's (``mae.py``), the local-window decoder
(``window.py``), CrossMAE's (``cross.py``) and SimMIM's linear head (``linear.py``)."""

from .base import Decoder, DecoderStem
from .cross import CrossMAEDecoder
from .linear import LinearDecoder
from .mae import MAEDecoder
from .window import WindowDecoder

__all__ = ["CrossMAEDecoder", "Decoder", "DecoderStem", "LinearDecoder", "MAEDecoder", "WindowDecoder"]
