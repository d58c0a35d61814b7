"""``python -m anymae.cli``: the ``anymae`` command."""

import sys

from . import main

sys.exit(main())
