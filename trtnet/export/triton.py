"""A Triton Inference Server model repository for a TensorRT plan: `REPO/NAME/config.pbtxt` and
`REPO/NAME/VERSION/model.plan`, with the model configuration derived from the network's IO and profiles."""
import os

from ..files import write_directory
from ..tensors import TensorSpec, network_io, profile_shapes

TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16", "int8": "TYPE_INT8",
                "int32": "TYPE_INT32", "int64": "TYPE_INT64", "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8"}


class ExportError(ValueError):
    pass


def _io(network_or_io, profiles):
    if not isinstance(network_or_io, tuple):
        return network_io(network_or_io, profiles or ())
    inputs, outputs = network_or_io
    if profiles:
        inputs = [TensorSpec(s.name, s.dtype, s.shape, [profile_shapes(p, s.name) for p in profiles]) for s in inputs]
    return inputs, outputs


def batch_only(inputs, outputs):
    """True when axis 0 is the only dynamic dim of every input and output: Triton can then batch requests."""
    return all(s.shape and s.shape[0] == -1 and -1 not in s.shape[1:] for s in [*inputs, *outputs])


def _batch_sizes(inputs):
    """(max_batch_size, preferred sizes): the largest batch any profile takes, and the profiles' opt/max."""
    per_profile = [[min(s.profiles[p][k][0] for s in inputs) for k in range(3)] for p in range(len(inputs[0].profiles))]
    if not per_profile:
        raise ExportError("the network has a dynamic batch but no optimization profile was given")
    if not any(lo == 1 for lo, _, _ in per_profile):
        raise ExportError(f"no optimization profile takes batch 1 (min batch per profile: "
                          f"{[lo for lo, _, _ in per_profile]}), but Triton sends any batch from 1 to max_batch_size")
    max_batch = max(hi for _, _, hi in per_profile)
    return max_batch, sorted({b for _, opt, hi in per_profile for b in (opt, hi)})


def _tensor(spec, batched):
    if spec.dtype not in TRITON_TYPES:
        raise ExportError(f"tensor '{spec.name}': data type {spec.dtype} has no Triton equivalent")
    dims = list(spec.shape[1:] if batched else spec.shape)
    lines = [f'    name: "{spec.name}"', f"    data_type: {TRITON_TYPES[spec.dtype]}",
             f"    dims: [ {', '.join(map(str, dims or [1]))} ]"]
    if not dims:  # a per-sample scalar: Triton wants at least one dim, reshaped away for the engine
        lines.append("    reshape: { shape: [ ] }")
    return "  {\n" + "\n".join(lines) + "\n  }"


def config_text(name, inputs, outputs, instances_per_gpu=1, max_queue_delay_us=None, gpus=None):
    """The config.pbtxt text (protobuf text format of Triton's ModelConfig)."""
    batched = batch_only(inputs, outputs)
    max_batch, preferred = _batch_sizes(inputs) if batched else (0, [])
    lines = [f'name: "{name}"', 'platform: "tensorrt_plan"', f"max_batch_size: {max_batch}",
             "input [\n" + ",\n".join(_tensor(s, batched) for s in inputs) + "\n]",
             "output [\n" + ",\n".join(_tensor(s, batched) for s in outputs) + "\n]"]
    if batched:
        delay = "" if max_queue_delay_us is None else f"\n  max_queue_delay_microseconds: {int(max_queue_delay_us)}"
        lines.append(f"dynamic_batching {{\n  preferred_batch_size: [ {', '.join(map(str, preferred))} ]{delay}\n}}")
    group = [f"    count: {int(instances_per_gpu)}", "    kind: KIND_GPU"]
    if gpus:
        group.append(f"    gpus: [ {', '.join(str(int(g)) for g in gpus)} ]")
    num_profiles = len(inputs[0].profiles) if inputs else 0
    if num_profiles > 1:
        group.append("    profile: [ " + ", ".join(f'"{p}"' for p in range(num_profiles)) + " ]")
    lines.append("instance_group [\n  {\n" + "\n".join(group) + "\n  }\n]")
    return "\n".join(lines) + "\n"


def write_repository(network_or_io, plan_bytes, repo_dir, name, profiles=None, instances_per_gpu=1,
                     max_queue_delay_us=None, gpus=None, version=1):
    """Write REPO/NAME (config.pbtxt and VERSION/model.plan) atomically: it is assembled in a hidden directory
    inside REPO and renamed into place, replacing an older NAME; a failure leaves no partial model behind.

    `network_or_io` is the INetworkDefinition the plan was built from (with `profiles`, its
    IOptimizationProfiles or {input: (min, opt, max)} dicts, in build order) or (inputs, outputs) TensorSpecs."""
    if not name or name.startswith(".") or os.sep in name or (os.altsep and os.altsep in name):
        raise ExportError(f"invalid Triton model name {name!r}: it names a directory in the repository")
    if not plan_bytes:
        raise ExportError(f"model '{name}': the engine plan is empty")
    inputs, outputs = _io(network_or_io, profiles)
    text = config_text(name, inputs, outputs, instances_per_gpu, max_queue_delay_us, gpus)
    return write_directory(os.path.join(repo_dir, name), {"config.pbtxt": text.encode(),
                                                         os.path.join(str(version), "model.plan"): plan_bytes})
