"""Trains the multi-task CNN on the slices `mrsort dataset --images` wrote, exports it.

    python -m training.cnn.train --train corpus-images.safetensors --out models/cnn.safetensors \\
        --log training/cnn/training-log.tsv [--device cpu|cuda] [--epochs 30] [--minutes 45]

Validation is a 20% split by study. Loss: class-weighted cross-entropy for the sequence head plus
class-weighted cross-entropy for the orientation head over the images whose orientation is
labelled (scouts mix planes and unlabelled series are -1: masked out). Adam; the learning rate is
divided by 10 when the validation loss has not improved for 5 epochs. Augmentation: rotation
+-10 degrees, scale +-5%, translation +-20 px of a 256-pixel slice (scaled to the input size).
Each epoch draws `--slices-per-series` random slices of every training series; the weights of
the epoch with the lowest validation loss are kept.
"""
import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import GroupShuffleSplit

from . import data as cnn_data
from . import export
from .model import LAYERS, Network


def augment_intensity(x, generator):
    """Random gamma (0.71-1.4: monotone, so which tissue is brighter never changes), Gaussian noise
    up to 3% of the range and a left-right mirror (labels unchanged) of a batch [N, 1, S, S] in
    [0, 1]. Tried against the synthetic corpus's single signal model; not used by the shipped
    model (training/cnn/NOTES.md)."""
    n = x.shape[0]
    gamma = torch.exp((torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * math.log(1.4))
    noise = torch.rand(n, 1, 1, 1, generator=generator) * 0.03
    x = x.clamp(0, 1) ** gamma + noise * torch.randn(x.shape, generator=generator)
    mirror = torch.rand(n, generator=generator) < 0.5
    x[mirror] = x[mirror].flip(-1)
    return x.clamp(0, 1)


def augment(x, generator):
    """Random rotation, scale and translation of a batch [N, 1, S, S] (zero fill outside)."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(10)
    scale = 1 + (torch.rand(n, generator=generator) * 2 - 1) * 0.05
    # 20 px of 256 in affine_grid's [-1, 1] coordinates is 2 * 20 / 256.
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 * 20 / 256)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def class_weights(labels, n_classes):
    """Inverse frequency, normalised to mean 1 over the classes present."""
    counts = np.bincount(labels[labels >= 0], minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    weights *= (counts > 0).sum() / weights.sum()
    return torch.tensor(weights, dtype=torch.float32)


def losses(model, x, sequence, orientation, sequence_weights, orientation_weights):
    log_s, log_o = model(x)
    loss = F.nll_loss(log_s, sequence, weight=sequence_weights)
    labelled = orientation >= 0
    if labelled.any():
        loss = loss + F.nll_loss(log_o[labelled], orientation[labelled], weight=orientation_weights)
    return loss, log_s, log_o


def split_by_study(data, fraction, seed):
    studies = data.series_study
    series = np.arange(len(data.series_uids))
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    train, valid = next(splitter.split(series, groups=studies))
    return set(train.tolist()), set(valid.tolist())


def predict(model, images, batch=256, device="cpu"):
    """Per-image sequence and orientation log-probabilities (eval mode, no augmentation)."""
    model.eval()
    out_s, out_o = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(cnn_data.to_float(images[start:start + batch]))[:, None].to(device)
            s, o = model(x)
            out_s.append(s.cpu())
            out_o.append(o.cpu())
    return torch.cat(out_s).numpy(), torch.cat(out_o).numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, nargs="+",
                        help="mrsort dataset --images file(s); several are trained on as one, split by study")
    parser.add_argument("--out", required=True, help="exported model (safetensors)")
    parser.add_argument("--checkpoint", help="PyTorch state dict of the kept epoch (default: OUT.pt)")
    parser.add_argument("--log", required=True, help="per-epoch log (TSV)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--minutes", type=float, default=45, help="stop after the epoch that passes this wall time")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--slices-per-series", type=int, default=6)
    parser.add_argument("--validation", type=float, default=0.2)
    parser.add_argument("--valid-slices", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=float, default=1.0,
                        help="channels of every convolution, as a multiple of model.LAYERS (the Swift engine reads any)")
    parser.add_argument("--keep", choices=["loss", "accuracy"], default="loss",
                        help="the epoch kept: lowest validation loss, or highest validation series accuracy")
    parser.add_argument("--augment-intensity", action="store_true", help="also a random gamma, noise and mirror")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--init", metavar="CHECKPOINT",
                       help="start from these weights (fine-tuning: a fresh log, epochs counted from 1)")
    start.add_argument("--resume", action="store_true",
                       help="continue from --checkpoint's weights (fresh optimiser state at --lr), appending to --log")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    data, images, preprocessing = cnn_data.load_many(args.train)
    n_seq, n_ori = len(data.sequences), len(data.orientations)
    scout = data.sequences.index("scout")
    # A scout's images lie in several planes: its series orientation says nothing about one image.
    orientation = np.where(data.sequence == scout, -1, data.orientation)
    train_series, valid_series = split_by_study(data, args.validation, args.seed)
    in_train = np.isin(data.series, list(train_series))
    train_rows = np.flatnonzero(in_train)
    # Validation: at most --valid-slices evenly spaced slices per series (the loss that steers the
    # learning rate and picks the epoch needs no more, and it costs training time).
    valid_rows = []
    for series in sorted(valid_series):
        rows = np.flatnonzero(data.series == series)
        valid_rows += rows[np.unique(np.linspace(0, len(rows) - 1, min(len(rows), args.valid_slices)).round().astype(int))].tolist()
    valid_rows = np.array(valid_rows, dtype=np.int64)
    by_series = {}
    for row in train_rows:
        by_series.setdefault(int(data.series[row]), []).append(row)
    series_labels = np.full(len(data.series_uids), -1)
    series_labels[data.series] = data.sequence
    sequence_weights = class_weights(series_labels[sorted(train_series)], n_seq).to(args.device)
    orientation_weights = class_weights(orientation[train_rows], n_ori).to(args.device)

    layers = [(max(1, round(channels * args.width)), stride) for channels, stride in LAYERS]
    model = Network(n_seq, n_ori, layers).to(args.device)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.1, patience=5)
    valid_x = torch.from_numpy(cnn_data.to_float(images[valid_rows]))[:, None]
    valid_s = torch.from_numpy(data.sequence[valid_rows])
    valid_o = torch.from_numpy(orientation[valid_rows])
    checkpoint = args.checkpoint or args.out + ".pt"
    # The kept epoch's score, lower is better: the validation loss, or minus the series accuracy.
    column = 4 if args.keep == "loss" else 6
    sign = 1.0 if args.keep == "loss" else -1.0
    best, first_epoch, offset = math.inf, 1, 0.0
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location=args.device)["state"])
    if args.resume:
        saved = torch.load(checkpoint)
        model.load_state_dict(saved["state"])
        first_epoch = saved["epoch"] + 1
        best = saved.get("valid_loss", math.inf) if args.keep == "loss" else math.inf
        with open(args.log) as previous:
            rows = [line.split("\t") for line in previous.read().strip().splitlines()[1:]]
        # Epochs after the kept one are dropped from the log: training continues from the kept weights.
        rows = [r for r in rows if int(r[0]) < first_epoch]
        if rows and math.isinf(best):
            best = sign * float(rows[-1][column])  # the kept epoch's row
        offset = float(rows[-1][1]) if rows else 0.0
        with open(args.log, "w") as log:
            log.write("epoch\tseconds\tlr\ttrain_loss\tvalid_loss\tvalid_image_sequence\tvalid_series_sequence\tvalid_image_orientation\n")
            log.writelines("\t".join(r) + "\n" for r in rows)
    if args.resume:
        # Fresh draws for the continued epochs: the start-of-run seeds would replay epoch 1's slices
        # and augmentations.
        rng = np.random.default_rng([args.seed, first_epoch])
        generator.manual_seed(args.seed * 1000 + first_epoch)
    started = time.time()
    with open(args.log, "a" if args.resume else "w") as log:
        if not args.resume:
            log.write("epoch\tseconds\tlr\ttrain_loss\tvalid_loss\tvalid_image_sequence\tvalid_series_sequence\tvalid_image_orientation\n")
        print(f"{len(train_series)} training series ({len(train_rows)} slices), {len(valid_series)} validation series "
              f"({len(valid_rows)} slices), input {images.shape[1]}x{images.shape[2]}", flush=True)
        for epoch in range(first_epoch, args.epochs + 1):
            model.train()
            rows = np.concatenate([rng.choice(r, size=min(len(r), args.slices_per_series), replace=False)
                                   for r in by_series.values()])
            rng.shuffle(rows)
            total, count = 0.0, 0
            for start in range(0, len(rows), args.batch):
                batch = np.sort(rows[start:start + args.batch])
                x = torch.from_numpy(cnn_data.to_float(images[batch]))[:, None]
                x = augment(x, generator)
                if args.augment_intensity:
                    x = augment_intensity(x, generator)
                x = x.to(args.device)
                y_s = torch.from_numpy(data.sequence[batch]).to(args.device)
                y_o = torch.from_numpy(orientation[batch]).to(args.device)
                loss, _, _ = losses(model, x, y_s, y_o, sequence_weights, orientation_weights)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item() * len(batch)
                count += len(batch)
            model.eval()
            with torch.no_grad():
                valid_loss, vs, vp, vo = 0.0, [], [], []
                for start in range(0, len(valid_rows), 256):
                    sl = slice(start, start + 256)
                    loss, log_s, log_o = losses(model, valid_x[sl].to(args.device), valid_s[sl].to(args.device),
                                                valid_o[sl].to(args.device), sequence_weights, orientation_weights)
                    valid_loss += loss.item() * len(log_s)
                    vs.append(log_s.argmax(1).cpu().numpy())
                    vp.append(torch.softmax(log_s, 1).cpu().numpy())
                    vo.append(log_o.argmax(1).cpu().numpy())
                valid_loss /= len(valid_rows)
            vs, vo = np.concatenate(vs), np.concatenate(vo)
            image_seq = float((vs == data.sequence[valid_rows]).mean())
            # The series vote that ships (Swift `Vote`): ties to the summed probabilities.
            voted = cnn_data.series_vote(data.series[valid_rows], vs, len(data.series_uids), n_seq, support=np.concatenate(vp))
            valid_list = sorted(valid_series)
            series_seq = float((voted[valid_list] == series_labels[valid_list]).mean())
            labelled = orientation[valid_rows] >= 0
            image_ori = float((vo[labelled] == orientation[valid_rows][labelled]).mean())
            lr = optimiser.param_groups[0]["lr"]
            scheduler.step(valid_loss)
            elapsed = time.time() - started
            line = (f"{epoch}\t{offset + elapsed:.0f}\t{lr:.0e}\t{total / count:.4f}\t{valid_loss:.4f}\t{image_seq:.4f}"
                    f"\t{series_seq:.4f}\t{image_ori:.4f}")
            log.write(line + "\n")
            log.flush()
            print(line, flush=True)
            score = valid_loss if args.keep == "loss" else -series_seq
            if score < best:
                best = score
                torch.save({"state": model.state_dict(), "epoch": epoch, "valid_loss": valid_loss, "preprocessing": preprocessing,
                            "sequences": data.sequences, "orientations": data.orientations, "layers": layers}, checkpoint)
            if elapsed > args.minutes * 60:
                break
    saved = torch.load(checkpoint)
    model.load_state_dict(saved["state"])
    model.cpu().eval()
    export.export(model, args.out, saved, provenance={"trained_epochs": str(saved["epoch"]),
                                                      "training_data": " ".join(args.train)})
    print(f"kept epoch {saved['epoch']} (validation {args.keep} {sign * best:.4f}); wrote {args.out}")


if __name__ == "__main__":
    main()
