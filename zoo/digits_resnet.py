"""A small ResNet on the digits enlarged to 1x32x32: a 3x3 stem and three stages of one basic block each
(BatchNorm, residual adds, 16/32/64 channels), global average pooling and a linear head. It trains in about
a minute on the CPU; its held-out split makes quantization's accuracy cost measurable on a residual network."""
import torch
import torch.nn.functional as F
from torch import nn

from trtnet import Graph, fc, flatten, global_avg_pool, relu, softmax
from trtnet.zoo import register
from trtnet.zoo.lenet import _digits, test_set
from trtnet.zoo.resnet import basic_block, conv_bn

WIDTHS = (16, 32, 64)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class DigitsResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, WIDTHS[0], 3, 1, 1, bias=False), nn.BatchNorm2d(WIDTHS[0])
        cins = (WIDTHS[0],) + WIDTHS[:-1]
        for i, (cin, cout) in enumerate(zip(cins, WIDTHS)):
            setattr(self, f"layer{i + 1}", nn.Sequential(Block(cin, cout, 1 if i == 0 else 2)))
        self.fc = nn.Linear(WIDTHS[-1], 10)

    def logits(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def forward(self, x):
        return F.softmax(self.logits(x), dim=1)


def train(model, epochs=3, seed=0):
    """Adam with a falling rate on the training split: about a minute on two cores, ~98% held-out accuracy."""
    torch.manual_seed(seed)
    x, y = map(torch.from_numpy, _digits()[0])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * ((len(x) + 63) // 64))
    model.train()
    for _ in range(epochs):
        for i in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            F.cross_entropy(model.logits(x[i]), y[i]).backward()
            opt.step()
            sched.step()
    model.eval()


@register("digits_resnet", (1, 32, 32), DigitsResNet, dataset=test_set, train=train)
def digits_resnet(w, shape):
    """Three-stage ResNet for 1x32x32 digits, 10-way softmax."""
    g = Graph("digits_resnet")
    x = relu(conv_bn(g.input("data", shape), w, "conv1", "bn1", WIDTHS[0], 3))
    for i, width in enumerate(WIDTHS):
        x = basic_block(x, w[f"layer{i + 1}.0"], width, 1 if i == 0 else 2)
    x = fc(flatten(global_avg_pool(x), 1), w["fc"], 10)
    g.output(softmax(x, dim=1), "prob")
    return g
