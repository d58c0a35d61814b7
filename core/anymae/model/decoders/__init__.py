"""Decoders, one file each around a shared stem (``base.py``): MAE's (``mae.py``), the local-window decoder
(``window.py``), CrossMAE's (``cross.py``) and SimMIM's linear head (``linear.py``)."""
