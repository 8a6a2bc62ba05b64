"""`trtnet.port`: turn a PyTorch nn.Module into a readable trtnet model file that checks against it.

The module's forward pass is captured (torch.fx, else torch.export), every call is written as the trtnet op of
the same torch name, weights as WeightMap views by state_dict prefix, and each repeated module class as one
function. Unsupported calls are all listed, with the source line that made them, before anything is written.
"""
__all__ = ["port", "port_spec", "PortError", "PortResult", "nms"]


def __getattr__(name):
    """The port needs torch; `python -m trtnet.port --help` and `import trtnet.port.ultralytics` load it only when used."""
    if name == "nms":
        from .ops import nms
        return nms
    if name in __all__:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'trtnet.port' has no attribute {name!r}")
