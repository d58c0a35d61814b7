"""Run the ``anymae`` command's entry point (``anymae.cli:main``, what the console script calls) on several argument
lists in one process: the wrong-path tests pay one interpreter start instead of one per case.

    python tests/core/cli_batch.py CASES.json RESULTS.json

CASES.json is a list of argument lists; RESULTS.json gets, for each, the exit status and what it printed.
"""

import contextlib
import io
import json
import sys

from anymae.cli import main

if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        cases = json.load(handle)
    results = []
    for args in cases:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(args)
            except SystemExit as exit_:
                status = exit_.code
        results.append({"returncode": status, "stdout": out.getvalue(), "stderr": err.getvalue()})
    with open(sys.argv[2], "w") as handle:
        json.dump(results, handle)
