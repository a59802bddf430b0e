"""PyTorch side of the CNN benchmark: the exported model's weights (batch norm folded, as the
Swift engine runs them), the same slices, the same batch size and thread count.

    python3 benchmarks/pytorch_cnn.py MODEL IMAGES [--threads N] [--slices S] [--batch B] [--rounds R]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402

from training.cnn.export import load_exported  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("images")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net, _ = load_exported(args.model)
    with safe_open(args.images, framework="np") as f:
        images = f.get_tensor("images")[:args.slices]
    x = torch.from_numpy(images.astype(np.float32) / 255)[:, None]

    def run():
        total = 0.0
        with torch.inference_mode():
            for start in range(0, len(x), args.batch):
                total += float(net.logits(x[start:start + args.batch])[0][:, 0].sum())
        return total

    checksum = run()
    best = float("inf")
    for _ in range(args.rounds):
        start = time.perf_counter()
        checksum += run()
        best = min(best, time.perf_counter() - start)
    print(f"pytorch-{torch.__version__} threads={args.threads} slices={len(x)} batch={args.batch} input={x.shape[-1]} "
          f"best_of={args.rounds} seconds={best:.4f} ms_per_slice={best * 1000 / len(x):.3f} checksum={checksum:.3f}")


if __name__ == "__main__":
    main()
