"""torchvision's shared building blocks, as the mobile families use them, and deferred PyTorch references."""
import importlib

from trtnet import bn, conv, global_avg_pool, mul


def deferred(module, name, **kw):
    """A factory for `module.name(**kw)` that imports `module` only when called: recording and building a
    model need neither torch nor torchvision, only its comparison with PyTorch does."""
    def make():
        return getattr(importlib.import_module(module), name)(**kw)
    make.__name__ = make.__qualname__ = name
    make.module = module  # what trtnet.build may import early, beside the engine build
    return make


def torchvision_model(name, package="torchvision.models", **kw):
    """The factory of torchvision.models' `name` (with keyword arguments `kw`), torchvision imported when called."""
    return deferred(package, name, **kw)


def make_divisible(v, divisor=8):
    """The nearest multiple of `divisor` (at least `divisor`), one step up where rounding lost over 10% of `v`:
    how the mobile families round their widths."""
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


def conv_bn_act(x, w, out, k, stride=1, groups=1, dilation=1, act=None, eps=1e-5):
    """Conv2dNormActivation: conv "0" (no bias, 'same' padding), BatchNorm "1", activation "2"."""
    y = bn(conv(x, w["0"], out, k, stride, (k - 1) // 2 * dilation, dilation, groups), w["1"], eps)
    return act(y, name=f"{w.prefix}.2") if act else y


def squeeze_excitation(x, w, squeeze, act, scale_act):
    """SqueezeExcitation: x * scale_act(fc2(act(fc1(avgpool(x))))), fc1/fc2 being 1x1 convs."""
    s = global_avg_pool(x, name=f"{w.prefix}.avgpool")
    s = act(conv(s, w["fc1"], squeeze, 1), name=f"{w.prefix}.activation")
    s = scale_act(conv(s, w["fc2"], x.shape[1], 1), name=f"{w.prefix}.scale_activation")
    return mul(x, s, name=w.prefix)
