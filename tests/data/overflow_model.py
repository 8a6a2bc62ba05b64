"""A model whose activations exceed float16's range (65504) between a large-scale fc and a LayerNorm that brings
them back: its fp16 network fails unless those layers stay in fp32."""
import torch
from torch import nn

import trtnet as tn
from trtnet.zoo import register


class Overflow(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc0, self.big, self.norm = nn.Linear(16, 32), nn.Linear(32, 64), nn.LayerNorm(64)
        self.fc1, self.head = nn.Linear(64, 32), nn.Linear(32, 4)
        with torch.no_grad():
            self.big.weight.mul_(2e5)   # |big(x)| reaches ~1e5

    def forward(self, x):
        x = self.norm(self.big(torch.relu(self.fc0(x))))
        return self.head(torch.relu(self.fc1(x)))


@register("overflow", (16,), Overflow)
def overflow(w, shape):
    g = tn.Graph("overflow")
    x = tn.relu(tn.fc(g.input("x", shape), w["fc0"], 32))
    x = tn.layer_norm(tn.fc(x, w["big"], 64), w["norm"])
    g.output(tn.fc(tn.relu(tn.fc(x, w["fc1"], 32)), w["head"], 4), "y")
    return g
