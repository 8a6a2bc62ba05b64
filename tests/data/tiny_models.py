"""Small models in a file of their own, as a user writes them: the command lines take `tiny_models.py:NAME`."""
import torch
from torch import nn

import trtnet as tn
from trtnet.zoo import register


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 8, 3, stride=2), nn.Linear(8, 5)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@register("tiny", ("N", 3, "H", "W"), Tiny)
def tiny(w, shape):
    """A two-layer conv net with dynamic batch, height and width."""
    g = tn.Graph("tiny")
    x = g.input("images", shape, ranges={"H": (8, 16, 32), "W": (8, 16, 32)})
    x = tn.relu(tn.conv(tn.relu(tn.conv(x, w["conv1"], 4, 3, padding=1)), w["conv2"], 8, 3, stride=2))
    g.output(tn.fc(tn.flatten(tn.global_avg_pool(x), 1), w["head"], 5), "logits")
    return g


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, a, b):
        return self.fc(a) + b, torch.relu(a * b)


@register("pair", (4,), Pair)
def pair(w, shape):
    """Two inputs, two outputs."""
    g = tn.Graph("pair")
    a, b = g.input("a", shape), g.input("b", shape)
    g.output(tn.fc(a, w["fc"], 4) + b, "sum")
    g.output(tn.relu(a * b), "prod")
    return g


class Ids(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)

    def forward(self, ids):
        return self.emb(ids).mean(1)


@register("ids", ("N", "L"), Ids)
def ids(w, shape):
    """An int32 input of token ids."""
    g = tn.Graph("ids")
    x = g.input("ids", shape, "int32", ranges={"L": (1, 3, 6)}, values=(0, 10))
    g.output(tn.mean(tn.embedding(x, w["emb"]), dim=1), "pooled")
    return g


@register("typo", ("N", 3, 8, 8), Tiny)
def typo(w, shape):
    """Tiny with a misspelt weight prefix."""
    g = tn.Graph("typo")
    x = g.input("images", shape)
    g.output(tn.conv(x, w["conv1x"], 4, 3, padding=1), "y")
    return g


@register("wrong", ("N", 3, 8, 8), Tiny)
def wrong(w, shape):
    """Tiny without its first ReLU: a network that does not match its PyTorch module."""
    g = tn.Graph("wrong")
    x = g.input("images", shape)
    x = tn.relu(tn.conv(tn.conv(x, w["conv1"], 4, 3, padding=1), w["conv2"], 8, 3, stride=2))
    g.output(tn.fc(tn.flatten(tn.global_avg_pool(x), 1), w["head"], 5), "logits")
    return g
