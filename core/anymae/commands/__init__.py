"""The ``anymae`` subcommands, one module per family: ``fit.py`` (LightningCLI's fit/validate/test/predict),
``plugins.py``, ``masks.py``, ``evaluate.py`` (knn/probe/finetune), ``export.py``, ``table.py``.

A command is a function ``run(argv: list[str]) -> int`` (the arguments after its name; the return value is the exit
status). The core registers its commands like a plugin does (:mod:`anymae._builtins`, by import path, so listing
them imports nothing heavy); ``anymae --help`` lists them with the plugins' own.
"""
