"""The data kit: what every modality's data modules share, so that a plugin's data module is its format and nothing
else (``modules.py``), its samples and what an unreadable one becomes (``samples.py``), the epoch orders
(``sampling.py``) and the loaders (``loaders.py``); pooled sources (``pooled.py``) and streaming shards
(``streaming.py``)."""
