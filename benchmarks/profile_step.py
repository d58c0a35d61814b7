"""Where our image MAE step spends its time: torch's profiler over a few training steps, self time grouped by what the
op is, and how close the matrix multiplications alone come to the machine's matmul rate.

    python benchmarks/profile_step.py [--size ViT-S/16] [--batch 32] [--precision bf16]

The groups: matmul (linear layers forward and backward), attention (SDPA and its backward), norm (LayerNorm and its
backward), activation (GELU and its backward), cast (dtype conversions and copies), optimizer (the AdamW step),
gather (masking: index, gather, scatter), elementwise (adds, muls, ...) and the rest. ``bench.py`` prints the
summary line of this profile beside the step times.
"""

import argparse
import sys
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from steps import SIZES, build, mae_gflop, matmul_ceiling, step_fn

GROUPS = (  # (group, substrings of aten op names), first match wins
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention", "_cudnn_attention")),
    ("matmul", ("addmm", "::mm", "bmm", "matmul", "linear", "baddbmm")),
    ("norm", ("layer_norm",)),
    ("activation", ("gelu",)),
    ("optimizer", ("adam", "_foreach", "_fused")),
    ("cast", ("::to", "_to_copy", "copy_", "clone", "contiguous")),
    ("gather", ("gather", "index", "scatter", "take_along", "sort", "argsort", "topk", "rand")),
    ("elementwise", ("add", "mul", "sub", "div", "pow", "mean", "sum", "where", "fill", "zero", "neg", "sqrt", "var")),
)


def group_of(name: str) -> str:
    for group, keys in GROUPS:
        if any(key in name for key in keys):
            return group
    return "other"


def profile_step(
    size: str, batch: int, precision: str, device: torch.device, steps: int = 3, table: bool = False
) -> dict:
    """Self time per group (seconds per step) of our step, the step's wall time, and the matmul efficiency."""
    module, optimizer = build("ours", size, device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" else nullcontext
    step = step_fn("ours", module, optimizer, torch.randn(batch, 3, 224, 224, device=device), autocast)
    step()
    step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_group: dict[str, float] = defaultdict(float)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    for event in prof.key_averages():
        per_group[group_of(event.key)] += getattr(event, attr) / 1e6 / steps
    total = sum(per_group.values())
    (dim, depth, _), dec = SIZES[size]
    gflop = batch * mae_gflop(dim, depth, dec, 196, 49, 768, full=False, hf=False)
    ceiling = matmul_ceiling(torch.bfloat16 if precision == "bf16" else torch.float32, device)
    matmul_rate = gflop / per_group["matmul"] if per_group["matmul"] else float("nan")
    return {
        "model": size,
        "batch": batch,
        "precision": precision,
        "profiled_s": total,
        "groups": dict(sorted(per_group.items(), key=lambda kv: -kv[1])),
        "gflop": gflop,
        "ceiling_gflops": ceiling,
        "matmul_gflops": matmul_rate,
        **({"table": prof.key_averages().table(sort_by=attr, row_limit=25)} if table else {}),
    }


def format_profile(result: dict) -> str:
    total = result["profiled_s"]
    lines = [
        f"profile of our {result['model']} b{result['batch']} {result['precision']} step: {total:.3f} s of op time "
        f"per step; matmuls alone run at {result['matmul_gflops']:.0f} GFLOP/s = "
        f"{result['matmul_gflops'] / result['ceiling_gflops']:.0%} of the {result['ceiling_gflops']:.0f} GFLOP/s "
        "ceiling measured now"
    ]
    lines += [f"  {group:<12}{seconds:>8.3f} s {seconds / total:>6.1%}" for group, seconds in result["groups"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="ViT-S/16", choices=["ViT-S/16", "ViT-B/16"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--table", action="store_true", help="also print the profiler's own table (top 25 ops)")
    options = parser.parse_args()
    device = torch.device(options.device)
    result = profile_step(options.size, options.batch, options.precision, device, table=options.table)
    print(result.get("table", ""))
    print(format_profile(result))


if __name__ == "__main__":
    main()
