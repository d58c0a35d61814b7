"""Which of the project's files one MAE training step runs code in, and how many lines a reader of the step opens.

    python benchmarks/step_path.py            # the demo's MAE (examples/image/mae_tiny_digits.yaml)

It builds the model of the demo config, runs one training step on a batch of random 32 x 32 images (the forward pass
and the backward pass), and records with ``sys.setprofile`` every call into a function defined under ``core/`` or
``plugins/``. A file is *crossed* when one of its functions runs; its lines are the whole file's, as a reader opens
it. Printed: each crossed file with its line count and the functions that ran, then the totals (files, lines,
distinct functions, calls). Issue 24's review counted 11 files and 2,796 lines on the same step (the ten files this
script finds on that code, 2,698 lines, plus the tokenizer base class, which no code of the step ran).
"""

import argparse
import collections
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "examples/image/mae_tiny_digits.yaml"))
    options = parser.parse_args()

    import anymae

    anymae.load_plugins().registry  # noqa: B018 (short names in the config resolve through the plugins)
    model = anymae.MaskedAutoencoder.from_config(yaml.safe_load(Path(options.config).read_text())["model"]).train()
    batch = model.tokenizer.example_batch(8)
    model(batch, generator=torch.Generator().manual_seed(0)).loss.backward()  # warm caches (position tables)

    calls: collections.Counter[tuple[str, str]] = collections.Counter()
    ours = (str(ROOT / "core"), str(ROOT / "plugins"))

    def record(frame, event, arg):  # sys.setprofile calls it with these three
        if event == "call" and frame.f_code.co_filename.startswith(ours):
            calls[(frame.f_code.co_filename, frame.f_code.co_qualname)] += 1

    sys.setprofile(record)
    try:
        model(batch, generator=torch.Generator().manual_seed(1)).loss.backward()
    finally:
        sys.setprofile(None)

    files: dict[str, list[str]] = collections.defaultdict(list)
    for path, name in calls:
        files[path].append(name)
    lines = 0
    for path in sorted(files):
        count = len(Path(path).read_text().splitlines())
        lines += count
        print(f"{Path(path).relative_to(ROOT)} ({count} lines): {', '.join(sorted(files[path]))}")
    print(f"{len(files)} files, {lines} lines, {len(calls)} functions, {sum(calls.values())} calls")


if __name__ == "__main__":
    main()
