"""MTCNN face detection (Zhang et al., 2016) with the trained weights facenet-pytorch ships.

Three cascaded networks, each conv/PReLU with ceil-mode max pooling and two or three heads (box regression,
face probability by softmax, and for O-Net five landmarks):
- mtcnn_pnet: fully convolutional proposal net over an image pyramid (any H, W >= 12): a 12x12 window per cell,
  stride 2;
- mtcnn_rnet: refines 24x24 crops; mtcnn_onet: scores 48x48 crops and places landmarks.
R-Net and O-Net flatten their last feature map in (W, H, C) order, as the original Caffe weights expect.
State-dict names are facenet-pytorch's (conv1, prelu1, ..., dense5_1, ...); `python -m trtnet.examples.mtcnn`
runs the whole detector.
"""
import importlib.util
import os

import numpy as np

from trtnet import Graph, conv, fc, flatten, max_pool, pad, permute, prelu, softmax
from trtnet.zoo import register

PYRAMID = (12, 320, 1280)   # P-Net input H and W: min, opt, max of the profile
LOWEST = float(np.finfo(np.float32).min)


def facenet_weights(name):
    """{state_dict name: array} of facenet-pytorch's `data/<name>.pt`, located without importing the package."""
    import torch
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None:
        raise ImportError("MTCNN's weights come with facenet-pytorch: pip install --no-deps facenet-pytorch")
    path = os.path.join(os.path.dirname(spec.origin), "data", f"{name}.pt")
    return {k: v.numpy() for k, v in torch.load(path, weights_only=True).items()}


def facenet_module(cls, outputs):
    """facenet-pytorch's PNet/RNet/ONet, fresh, returning its heads by this zoo's output names."""
    from facenet_pytorch.models import mtcnn

    class Named(getattr(mtcnn, cls)):
        def forward(self, x):
            return dict(zip(outputs, super().forward(x)))

    return Named(pretrained=False).eval()


def trunk(x, w, pools):
    """conv + PReLU stages; `pools[i]` is the (kernel, stride) of the ceil-mode max pool after stage i, or None."""
    for i, pool in enumerate(pools, 1):
        x = prelu(conv(x, w[f"conv{i}"]), w[f"prelu{i}"])
        if pool == (2, 2):
            x = ceil_pool2(x, f"pool{i}")
        elif pool is not None:
            x = max_pool(x, pool[0], pool[1], ceil_mode=True, name=f"pool{i}")
    return x


def ceil_pool2(x, name):
    """2x2 stride-2 ceil-mode max pooling on sizes that may be dynamic (P-Net's pyramid): a row and a column of the
    lowest float32 at the end, then round-down pooling, gives the same windows and ceil(size / 2) outputs."""
    return max_pool(pad(x, (0, 1, 0, 1), value=LOWEST, name=f"{name}/pad"), 2, 2, name=name)


def dense_heads(x, w, first, heads):
    """Flatten (W, H, C order), dense + PReLU, then the softmax probability head and the linear heads."""
    x = flatten(permute(x, (0, 3, 2, 1)), 1)
    x = prelu(fc(x, w[f"dense{first}"]), w[f"prelu{first}"])
    prob = softmax(fc(x, w[f"dense{first + 1}_1"]), dim=1, name=f"softmax{first + 1}_1")
    return prob, [fc(x, w[f"dense{first + 1}_{i}"]) for i in heads]


PNET_OUT = ("reg", "prob")


@register("mtcnn_pnet", (3, "H", "W"), lambda: facenet_module("PNet", PNET_OUT), test_shape=(3, 24, 30),
          state=lambda: facenet_weights("pnet"),
          doc=f"MTCNN P-Net: normalised images (3, H, W), H and W in {PYRAMID[0]}..{PYRAMID[2]}; box regression "
              "(4, H', W') and face probability (2, H', W') per 12x12 window, stride 2")
def mtcnn_pnet(w, shape):
    g = Graph("mtcnn_pnet")
    dynamic = {d: PYRAMID for d in shape if isinstance(d, str)}
    x = trunk(g.input("images", ("N", *shape), ranges=dynamic or None), w, [(2, 2), None, None])
    prob = softmax(conv(x, w["conv4_1"]), dim=1, name="softmax4_1")
    g.output(conv(x, w["conv4_2"]), "reg")
    g.output(prob, "prob")
    return g


RNET_OUT = ("reg", "prob")


@register("mtcnn_rnet", (3, 24, 24), lambda: facenet_module("RNet", RNET_OUT), state=lambda: facenet_weights("rnet"),
          doc="MTCNN R-Net: normalised 24x24 face candidates; box regression (4) and face probability (2)")
def mtcnn_rnet(w, shape):
    g = Graph("mtcnn_rnet")
    x = trunk(g.input("images", ("N", *shape), ranges={"N": (1, 64, 512)}), w, [(3, 2), (3, 2), None])
    prob, (reg,) = dense_heads(x, w, 4, [2])
    g.output(reg, "reg")
    g.output(prob, "prob")
    return g


ONET_OUT = ("reg", "landmarks", "prob")


@register("mtcnn_onet", (3, 48, 48), lambda: facenet_module("ONet", ONET_OUT), state=lambda: facenet_weights("onet"),
          doc="MTCNN O-Net: normalised 48x48 faces; box regression (4), landmarks (5 x, then 5 y, relative to the "
              "box) and face probability (2)")
def mtcnn_onet(w, shape):
    g = Graph("mtcnn_onet")
    x = trunk(g.input("images", ("N", *shape), ranges={"N": (1, 16, 128)}), w, [(3, 2), (3, 2), (2, 2), None])
    prob, (reg, landmarks) = dense_heads(x, w, 5, [2, 3])
    g.output(reg, "reg")
    g.output(landmarks, "landmarks")
    g.output(prob, "prob")
    return g
