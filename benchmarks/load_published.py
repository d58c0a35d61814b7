"""How long reading a published MAE file takes, and how much memory: a ViT-L/16 ``mae_pretrain_vit_large.pth``
(facebookresearch/mae's layout, random weights, about 1.2 GB) read by ``anymae.load_encoder``, beside timm building
the same ViT and loading the same state dict, each in a fresh process on this machine.

    python benchmarks/load_published.py            # writes the file into a temporary folder, then times both
    python benchmarks/load_published.py --model vit_base_patch16_224

Printed: seconds and peak resident memory of each, and their ratio (anymae / timm).
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ANYMAE = """
import json, resource, sys, time
start = time.perf_counter()
import anymae
encoder = anymae.load_encoder(sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "params": sum(p.numel() for p in encoder.parameters())}))
"""

TIMM = """
import json, resource, sys, time
start = time.perf_counter()
import timm, torch
model = timm.create_model(sys.argv[2], pretrained=False, num_classes=0)
model.load_state_dict(torch.load(sys.argv[1], map_location="cpu", weights_only=True, mmap=True)["model"])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "params": sum(p.numel() for p in model.parameters())}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit_large_patch16_224", help="the timm ViT whose MAE file is written")
    options = parser.parse_args()
    import timm

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mae_pretrain.pth"
        model = timm.create_model(options.model, pretrained=False, num_classes=0)
        torch.save({"model": model.state_dict()}, path)
        size_mb = path.stat().st_size / 2**20
        del model
        results = {}
        for name, script in (("anymae", [ANYMAE, str(path)]), ("timm", [TIMM, str(path), options.model])):
            run = subprocess.run([sys.executable, "-c", *script], capture_output=True, text=True, check=True)
            results[name] = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"{options.model} MAE file, {size_mb:.0f} MB, {results['anymae']['params'] / 1e6:.0f} M parameters")
    for name, row in results.items():
        print(f"  {name:6s} {row['seconds']:6.2f} s   peak {row['peak_mb']:7.0f} MB")
    time_ratio = results["anymae"]["seconds"] / results["timm"]["seconds"]
    memory_ratio = results["anymae"]["peak_mb"] / results["timm"]["peak_mb"]
    print(f"  anymae / timm: {time_ratio:.2f} x the time, {memory_ratio:.2f} x the memory")


if __name__ == "__main__":
    main()
