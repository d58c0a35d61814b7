"""Multi-modal masked autoencoders: one model over several plugins' tokens (CAV-MAE, MultiMAE, video + IMU).

``tokenizer.py`` (the joint token sequence and its record of modalities) · ``groups.py`` (each modality's tokens
out of a joint sequence and back) · ``encoder.py`` · ``decoder.py`` · ``target.py``. The masker is
:class:`anymae.masking.multi_modal.MultiModalMasker`. Nothing here imports a plugin: the modalities are whatever
tokenizers the configuration names.
"""
