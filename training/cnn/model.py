"""The multi-task CNN (Kasmanoff et al. 2022, narrowed for CPU): 10 convolution + batch norm +
ReLU layers, global average pooling, and two heads (25 sequence and 4 orientation
log-probabilities).

The layer table `LAYERS` is also written into the exported model's metadata, so the Swift
engine builds the same network from the file alone.
"""
import torch
from torch import nn
import torch.nn.functional as F

# (output channels, stride); every convolution is 3x3 with padding 1.
LAYERS = [(16, 2), (16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (96, 2), (96, 1), (128, 1), (128, 1)]


class Network(nn.Module):
    def __init__(self, n_sequences=25, n_orientations=4, layers=LAYERS):
        super().__init__()
        self.layers = list(layers)
        blocks, channels = [], 1
        for out, stride in self.layers:
            blocks += [nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*blocks)
        self.sequence = nn.Linear(channels, n_sequences)
        self.orientation = nn.Linear(channels, n_orientations)

    def embed(self, x):
        return self.features(x).mean(dim=(2, 3))

    def logits(self, x):
        """Pre-softmax outputs of both heads, for input [N, 1, S, S] in [0, 1]."""
        z = self.embed(x)
        return self.sequence(z), self.orientation(z)

    def forward(self, x):
        s, o = self.logits(x)
        return F.log_softmax(s, dim=1), F.log_softmax(o, dim=1)


def folded_convolutions(model):
    """(weight, bias) per convolution with its batch norm folded in (eval-mode statistics)."""
    result = []
    modules = list(model.features)
    for i in range(0, len(modules), 3):
        conv, bn = modules[i], modules[i + 1]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        weight = conv.weight * scale[:, None, None, None]
        bias = bn.bias - bn.running_mean * scale
        result.append((weight.detach().float().contiguous(), bias.detach().float().contiguous()))
    return result


class FoldedNetwork(nn.Module):
    """The exported function: convolutions with bias, no batch norm. Used for the reference
    logits of the parity fixture and the PyTorch side of the benchmark."""

    def __init__(self, convolutions, strides, sequence, orientation):
        super().__init__()
        self.strides = list(strides)
        self.weights = nn.ParameterList([nn.Parameter(w, requires_grad=False) for w, _ in convolutions])
        self.biases = nn.ParameterList([nn.Parameter(b, requires_grad=False) for _, b in convolutions])
        self.sequence = sequence
        self.orientation = orientation

    def logits(self, x):
        for w, b, stride in zip(self.weights, self.biases, self.strides):
            x = F.relu(F.conv2d(x, w, b, stride=stride, padding=1))
        z = x.mean(dim=(2, 3))
        return self.sequence(z), self.orientation(z)

    def forward(self, x):
        s, o = self.logits(x)
        return F.log_softmax(s, dim=1), F.log_softmax(o, dim=1)
