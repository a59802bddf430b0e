"""Exports the trained CNN for the Swift engine, and writes the Swift parity fixture.

Model file (safetensors, format `mrsort-cnn`, version 1): `conv{i}.weight` F32 [out, in, 3, 3]
and `conv{i}.bias` F32 [out] with batch norm folded in, for i = 0..9 (3x3, padding 1, ReLU after
each); then global average pooling and the heads `sequence.weight` [25, C], `sequence.bias`,
`orientation.weight` [4, C], `orientation.bias` (logits; log-softmax gives the log-probabilities).
Metadata: `sequences`, `orientations` (class names in output order), `strides` (per convolution),
`preprocessing` (SlicePreprocessing's parameters: size and percentiles), `input`, provenance.

    python -m training.cnn.export --checkpoint models/cnn.safetensors.pt --out models/cnn.safetensors \\
        --fixture Tests/ClassificationTests/Fixtures/cnn-parity.safetensors --fixture-data realdata-images.safetensors
"""
import argparse
import json

import numpy as np
import torch
from safetensors.numpy import save_file

from . import data as cnn_data
from .model import LAYERS, FoldedNetwork, Network, folded_convolutions

FORMAT, VERSION = "mrsort-cnn", "1"


def folded(model):
    return FoldedNetwork(folded_convolutions(model), [s for _, s in model.layers], model.sequence, model.orientation).eval()


def export(model, path, saved, provenance=None):
    """Writes the folded model; returns the FoldedNetwork it describes."""
    net = folded(model)
    tensors = {}
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        tensors[f"conv{i}.weight"] = w.detach().numpy().astype(np.float32)
        tensors[f"conv{i}.bias"] = b.detach().numpy().astype(np.float32)
    for head in ("sequence", "orientation"):
        layer = getattr(net, head)
        tensors[f"{head}.weight"] = layer.weight.detach().numpy().astype(np.float32).copy()
        tensors[f"{head}.bias"] = layer.bias.detach().numpy().astype(np.float32).copy()
    metadata = {
        "format": FORMAT, "version": VERSION,
        "sequences": json.dumps(saved["sequences"]), "orientations": json.dumps(saved["orientations"]),
        "strides": json.dumps(net.strides), "preprocessing": json.dumps(saved["preprocessing"]),
        "input": "one slice [1, size, size] from SlicePreprocessing, values in [0, 1]",
    }
    metadata.update(provenance or {})
    save_file(tensors, path, metadata=metadata)
    return net


def load_exported(path):
    """The FoldedNetwork of an exported model file (what the Swift engine runs) and its metadata."""
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"{path}: not an {FORMAT} v{VERSION} model")
        t = {name: f.get_tensor(name) for name in f.keys()}
    strides = json.loads(meta["strides"])
    convolutions = [(t[f"conv{i}.weight"], t[f"conv{i}.bias"]) for i in range(len(strides))]
    heads = []
    for head in ("sequence", "orientation"):
        w = t[f"{head}.weight"]
        layer = torch.nn.Linear(w.shape[1], w.shape[0])
        layer.weight.data.copy_(w)
        layer.bias.data.copy_(t[f"{head}.bias"])
        heads.append(layer.requires_grad_(False))
    return FoldedNetwork(convolutions, strides, *heads).eval(), meta


def load_trained(checkpoint):
    saved = torch.load(checkpoint, map_location="cpu")  # also a checkpoint written on a GPU
    # Checkpoints before --width hold no layer table: they are the default network.
    model = Network(len(saved["sequences"]), len(saved["orientations"]), saved.get("layers", LAYERS))
    model.load_state_dict(saved["state"])
    return model.eval(), saved


def write_fixture(net, images, path, count=8, seed=0):
    """`count` slices spread over the data, with the folded network's reference logits."""
    rows = np.linspace(0, len(images) - 1, count).round().astype(int)
    x = cnn_data.to_float(images[rows])
    with torch.no_grad():
        s, o = net.logits(torch.from_numpy(x)[:, None])
    save_file({"input": x, "sequence_logits": s.numpy(), "orientation_logits": o.numpy()}, path,
              metadata={"format": "mrsort-cnn-parity", "source": "training/cnn/export.py"})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--fixture")
    parser.add_argument("--fixture-data", help="mrsort dataset --images file whose slices the fixture takes")
    args = parser.parse_args(argv)
    model, saved = load_trained(args.checkpoint)
    net = export(model, args.out, saved, provenance={"trained_epochs": str(saved["epoch"])})
    if args.fixture:
        _, images, _ = cnn_data.load(args.fixture_data)
        write_fixture(net, images, args.fixture)


if __name__ == "__main__":
    main()
