"""LeNet-5 (LeCun et al., 1998) on 1x32x32 digits: two conv/pool stages, then three fully connected layers."""
import functools

import numpy as np

from trtnet import Graph, avg_pool, conv, flatten, fc, relu, softmax
from trtnet.zoo import register
from zoo import blocks


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


def train_inputs():
    """The training split's images: what the digits models calibrate on."""
    return _digits()[0][0]


def train(model, epochs=15, seed=0, lr=2e-3, one_cycle=False):
    """Adam on the training split, batches of 64 (with a one-cycle rate schedule if asked): a few seconds give
    LeNet about 97% test accuracy; the digits ResNet takes three epochs."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(seed)
    x, y = map(torch.from_numpy, _digits()[0])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(x) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps) if one_cycle else None
    model.train()
    for _ in range(epochs):
        for i in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            F.cross_entropy(model.logits(x[i]), y[i]).backward()
            opt.step()
            if sched is not None:
                sched.step()
    model.eval()


@register("lenet", (1, 32, 32), blocks.deferred("zoo.torch_refs", "LeNet"), dataset=test_set, train=train,
          calibration=train_inputs)
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


def __getattr__(name):
    """`LeNet`, the PyTorch module, from where it lives (importing torch only when asked for)."""
    if name == "LeNet":
        from zoo.torch_refs import LeNet
        return LeNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
