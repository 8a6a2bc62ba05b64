"""LeNet-5 (LeCun et al., 1998) on 1x32x32 digits: two conv/pool stages, then three fully connected layers."""
import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trtnet import Graph, avg_pool, conv, flatten, fc, relu, softmax
from trtnet.zoo import register


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def logits(self, x):
        x = F.avg_pool2d(F.relu(self.conv1(x)), 2)
        x = F.avg_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    def forward(self, x):
        return F.softmax(self.logits(x), dim=1)


@functools.lru_cache(maxsize=None)
def _digits():
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1] and enlarged 4x to 32x32; a fixed 80/20 split."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = np.kron(d.images / 16.0, np.ones((4, 4))).astype(np.float32)[:, None]
    order = np.random.default_rng(0).permutation(len(x))
    cut = int(0.8 * len(x))
    return (x[order[:cut]], d.target[order[:cut]]), (x[order[cut:]], d.target[order[cut:]])


def test_set():
    return _digits()[1]


def train(model, epochs=15, seed=0):
    """A few seconds of Adam on the training split: enough for about 97% test accuracy."""
    torch.manual_seed(seed)
    x, y = map(torch.from_numpy, _digits()[0])
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        for i in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            F.cross_entropy(model.logits(x[i]), y[i]).backward()
            opt.step()
    model.eval()


@register("lenet", (1, 32, 32), LeNet, dataset=test_set, train=train)
def lenet(w, shape):
    """LeNet-5, 1x32x32 input, 10-way softmax."""
    g = Graph("lenet")
    x = g.input("data", shape)
    x = avg_pool(relu(conv(x, w["conv1"], 6, 5)), 2)
    x = avg_pool(relu(conv(x, w["conv2"], 16, 5)), 2)
    x = flatten(x, 1)
    x = relu(fc(x, w["fc1"], 120))
    x = relu(fc(x, w["fc2"], 84))
    g.output(softmax(fc(x, w["fc3"], 10), dim=1), "prob")
    return g
