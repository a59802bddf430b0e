"""Figures of an exported CNN (the file the Swift engine runs): held-out synthetic series vote,
real-data per-class series accuracy and confusion matrix, saliency maps; writes REPORT.md.

    python -m training.cnn.report --model models/cnn.safetensors --log training/cnn/training-log.tsv \\
        --held-out eval1-images.safetensors --real realdata-images.safetensors \\
        --report training/cnn/REPORT.md --saliency training/cnn/saliency.png
"""
import argparse
import sys

import numpy as np
import torch

from training.forest.train import confusion, table

from . import data as cnn_data
from .export import load_exported


def predict(net, images, batch=256):
    seq, ori = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            s, o = net(torch.from_numpy(cnn_data.to_float(images[start:start + batch]))[:, None])
            seq.append(s.numpy())
            ori.append(o.numpy())
    return np.concatenate(seq), np.concatenate(ori)


def evaluate(net, path):
    """Per-series truth and CNN votes of a `mrsort dataset --images` file."""
    data, images, _ = cnn_data.load(path)
    log_s, log_o = predict(net, images)
    n = len(data.series_uids)
    scout = data.sequences.index("scout")
    seq_truth = np.full(n, -1)
    seq_truth[data.series] = data.sequence
    ori_truth = np.full(n, -1)
    ori_truth[data.series] = data.orientation
    # As the agent votes: sequence ties to the summed probabilities, orientation ties to the
    # lower index (the Swift orientation vote has no support).
    probabilities = torch.softmax(torch.from_numpy(log_s), 1).numpy()
    seq_vote = cnn_data.series_vote(data.series, log_s.argmax(1), n, len(data.sequences), support=probabilities)
    # Scouts are exempt from the orientation vote (they mix planes).
    ori_vote = cnn_data.series_vote(data.series, log_o.argmax(1), n, len(data.orientations), keep=data.sequence != scout)
    image_accuracy = float((log_s.argmax(1) == data.sequence).mean())
    return dict(data=data, images=images, log_s=log_s, seq_truth=seq_truth, seq_vote=seq_vote, ori_truth=ori_truth,
                ori_vote=ori_vote, image_accuracy=image_accuracy, present=seq_vote >= 0, scout=scout)


def saliency_figure(net, result, path, per_class=3):
    """Per class, `per_class` correctly classified slices beside |d logit / d input| (as the paper's Fig. 4)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    data, images, log_s = result["data"], result["images"], result["log_s"]
    names = data.sequences
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(len(names), 2 * per_class, figsize=(2 * per_class * 1.1, len(names) * 1.15))
    for c, name in enumerate(names):
        rows = np.flatnonzero((data.sequence == c) & (log_s.argmax(1) == c))
        rows = rng.choice(rows, size=min(per_class, len(rows)), replace=False) if len(rows) else []
        for k in range(per_class):
            a, b = axes[c, 2 * k], axes[c, 2 * k + 1]
            a.axis("off"); b.axis("off")
            if k >= len(rows):
                continue
            x = torch.from_numpy(cnn_data.to_float(images[rows[k]:rows[k] + 1]))[:, None].requires_grad_(True)
            s, _ = net.logits(x)
            s[0, c].backward()
            g = x.grad[0, 0].abs().numpy()
            a.imshow(x.detach()[0, 0], cmap="gray", vmin=0, vmax=1)
            b.imshow(g / (np.percentile(g, 99.5) + 1e-12), cmap="inferno", vmin=0, vmax=1)
        axes[c, 0].text(-8, 48, name, ha="right", va="center", fontsize=8)
    fig.suptitle("CNN saliency: slice and |d sequence logit / d pixel| (held-out synthetic, correct predictions)", fontsize=9)
    fig.subplots_adjust(left=0.14, right=0.99, top=0.97, bottom=0.01, wspace=0.04, hspace=0.08)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    # A 256-colour palette keeps the committed figure small (a few hundred kB instead of 2 MB).
    from PIL import Image
    Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)


def confusion_figure(truth, predicted, names, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix
    labels = sorted(set(truth) | set(predicted))
    m = confusion_matrix(truth, predicted, labels=labels)
    fig, ax = plt.subplots(figsize=(0.45 * len(labels) + 2, 0.45 * len(labels) + 1.5))
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > m.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), [names[l] for l in labels], rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), [names[l] for l in labels], fontsize=7)
    ax.set_xlabel("CNN (series vote)")
    ax.set_ylabel("label")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--held-out", required=True)
    parser.add_argument("--real")
    parser.add_argument("--report", required=True)
    parser.add_argument("--saliency")
    parser.add_argument("--confusion", help="real-data confusion matrix PNG")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--extra", nargs="*", default=[], help="markdown files appended to the report (benchmark, ensemble)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python -m training.cnn.report " + " ".join(sys.argv[1:] if argv is None else argv)
    net, meta = load_exported(args.model)
    held = evaluate(net, args.held_out)
    names = held["data"].sequences
    p = held["present"]
    seq_ok = held["seq_vote"][p] == held["seq_truth"][p]
    ori_mask = p & (held["ori_truth"] >= 0) & (held["ori_vote"] >= 0)
    ori_ok = held["ori_vote"][ori_mask] == held["ori_truth"][ori_mask]
    post = np.isin(held["seq_truth"], [names.index(n) for n in ("t1_pre", "t1_post", "t1_iac_pre", "t1_iac_post",
                                                                 "t1_3d_pre", "t1_3d_post", "vibe_pre", "vibe_post")]) & p
    pair = lambda v: np.where(np.isin(v, np.flatnonzero([n.endswith("_post") for n in names])), v - 1, v)
    blind = (pair(held["seq_vote"][p]) == pair(held["seq_truth"][p])).mean()
    log_lines = open(args.log).read().strip().splitlines()
    report = ["# Multi-task CNN\n",
              f"Model `{args.model}`: {len(json_list(meta['strides']))} convolutions (3×3, strides "
              f"{meta['strides']}), batch norm folded; input {meta['preprocessing']}; kept epoch "
              f"{meta.get('trained_epochs')}. Figures made by `{command}` from the exported file (the function the "
              "Swift engine runs; parity ≤ 1e-3 is tested in Swift).\n",
              f"## Held-out synthetic: {args.held_out} (studies never trained on; series vote over every stored slice)\n",
              f"- **sequence accuracy: {seq_ok.mean():.4f}** ({int(seq_ok.sum())}/{len(seq_ok)}); image accuracy "
              f"{held['image_accuracy']:.4f}; each pre/post-contrast pair counted as one class: {blind:.4f}",
              f"- T1-family pre/post classes: {(held['seq_vote'][post] == held['seq_truth'][post]).mean():.4f} "
              f"({int(post.sum())} series)",
              f"- **orientation accuracy: {ori_ok.mean():.4f}** ({int(ori_ok.sum())}/{len(ori_ok)} labelled non-scout series)\n",
              table(held["seq_truth"][p], held["seq_vote"][p], names), ""]
    if args.real:
        real = evaluate(net, args.real)
        subjects = np.array(real["data"].series_subjects)
        p = real["present"] & np.isin(subjects, ["head", "non-brain"])
        t, v = real["seq_truth"][p], real["seq_vote"][p]
        ok = t == v
        o_mask = p & (real["ori_truth"] >= 0) & (real["ori_vote"] >= 0)
        o_ok = real["ori_vote"][o_mask] == real["ori_truth"][o_mask]
        report += ["## ../shared/realdata: CNN only (series vote; head and non-brain series, phantoms apart)\n",
                   f"- **sequence accuracy: {ok.mean():.4f}** ({int(ok.sum())}/{len(ok)})",
                   f"- orientation accuracy (CNN head, not geometry): {o_ok.mean():.4f} ({int(o_ok.sum())}/{len(o_ok)})\n",
                   "Per-class series accuracy (= recall):\n", "| class | series | correct | accuracy |", "|---|---:|---:|---:|"]
        for c in sorted(set(t)):
            n, k = int((t == c).sum()), int(((t == c) & ok).sum())
            report.append(f"| {names[c]} | {n} | {k} | {k / n:.2f} |")
        report += ["", table(t, v, names), "", "Confusion matrix:\n", confusion(t, v, names), ""]
        if args.confusion:
            confusion_figure(t, v, names, args.confusion, "realdata, CNN only (series vote)")
            report += [f"![confusion](<{args.confusion.split('/')[-1]}>)\n"]
        wrong = [(real["data"].series_dirs[i], names[real["seq_truth"][i]], names[real["seq_vote"][i]])
                 for i in np.flatnonzero(p) if real["seq_truth"][i] != real["seq_vote"][i]]
        report += ["Misclassified:\n", "| series | label | CNN |", "|---|---|---|"]
        report += [f"| {d} | {a} | {b} |" for d, a, b in wrong] + [""]
        phantom = real["present"] & (subjects == "phantom")
        if phantom.any():
            report += [f"Phantom series (reported apart): {int((real['seq_vote'][phantom] == real['seq_truth'][phantom]).sum())}"
                       f"/{int(phantom.sum())} match their label.\n"]
    if args.saliency:
        saliency_figure(net, held, args.saliency)
        report += ["## Saliency\n", f"![saliency](<{args.saliency.split('/')[-1]}>)\n",
                   "Per class, three correctly classified held-out slices beside the magnitude of the gradient of the "
                   "predicted sequence logit with respect to the input pixels (the paper's Fig. 4).\n"]
    report += ["## Training log\n", f"`{args.log}` (one line per epoch; validation = 20% of the training studies):\n",
               "```", *log_lines, "```", ""]
    for extra in args.extra:
        report += [open(extra).read()]
    with open(args.report, "w") as f:
        f.write("\n".join(report))
    print("\n".join(report[:12]))


def json_list(text):
    import json
    return json.loads(text)


if __name__ == "__main__":
    main()
