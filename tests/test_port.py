"""trtnet.port: PyTorch modules written as trtnet model files that check against them."""
import os
import re
import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from trtnet.port import PortError, port, port_spec
from trtnet.port.__main__ import main

timm = pytest.importorskip("timm")


def test_resnet26d_reads_like_the_zoo_and_checks(tmp_path):
    t0 = time.perf_counter()
    out = str(tmp_path / "resnet26d.py")
    r = port_spec("timm:resnet26d", out, {"x": ((1, 3, 64, 64), "float32")}, check=True)
    assert time.perf_counter() - t0 < 60
    assert r.ok, r.report.summary()
    assert r.method == "fx"
    code = open(out).read()
    assert re.search(r"^def bottleneck\(x, w\):", code, re.M)
    calls = re.findall(r'x = (bottleneck\w*)\((?:x|maxpool), w\["layer(\d)\.(\d)"\]\)', code)
    assert len(calls) == 8 and {c[0] for c in calls} >= {"bottleneck"}
    assert 'conv(x, w["conv1.0"], stride=2, padding=1)' in code
    assert "%" not in code and not re.search(r"\b\w+_\d{2,}\b", code)
    assert "@register('resnet26d', (3, 64, 64), lambda: timm.create_model('resnet26d'" in code
    assert os.path.exists(tmp_path / "resnet26d.safetensors")
    assert max(len(ln) for ln in code.splitlines()) < 120


def test_small_vision_transformer_checks(tmp_path):
    r = port_spec('timm:vit_tiny_patch16_224{"img_size": 32, "depth": 2}', str(tmp_path / "vit.py"),
                  {"x": ((1, 3, 32, 32), "float32")}, check=True)
    assert r.ok, r.report.summary()
    code = r.code
    assert re.search(r"^def block\(x, w\):", code, re.M)
    assert code.count("= block(") + code.count("    x = block(") >= 1


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = torch.fft.fft2(self.conv(x)).real
        return torch.special.i0(y) + torch.nonzero(y).sum()


def test_unsupported_ops_are_listed_at_once_and_nothing_is_written(tmp_path):
    out = tmp_path / "bad.py"
    with pytest.raises(PortError) as e:
        port(Unsupported(), torch.randn(1, 3, 8, 8), str(out))
    msg = str(e.value)
    assert re.match(r"\d+ unsupported operations \(nothing written\)", msg)
    for op in ("fft2", "i0", "nonzero"):
        line = next(ln for ln in msg.splitlines() if op in ln)
        assert "test_port.py:" in line
    assert not out.exists() and not (tmp_path / "bad.safetensors").exists()


def test_command_line_exit_status(tmp_path, capsys):
    assert main(["torchvision:squeezenet1_0", "-o", str(tmp_path / "sq.py"), "--input", "x:1x3x64x64"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_windowed_attention_masks_fold_to_constants():
    r = port_spec("torchvision:swin_t", None, {"x": ((1, 3, 64, 64), "float32")}, check=True)
    assert r.ok, r.report.summary()
    assert r.method == "fx" and "new_zeros" not in r.code
    assert re.search(r"^def shifted_window_attention\(x, w", r.code, re.M)   # one function per block class
    assert any(k.endswith("_folded") for k in r.extra)     # the shifted-window mask is a stored constant


def test_video_network_with_functional_conv3d_arguments():
    r = port_spec("torchvision:r3d_18", None, {"x": ((1, 3, 4, 32, 32), "float32")}, check=True)
    assert r.ok, r.report.summary()
    assert "conv(" in r.code and "stride=(1, 2, 2)" in r.code


def test_text_transformer_with_token_ids_checks():
    spec = ('transformers:BertModel{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, '
            '"intermediate_size": 128, "vocab_size": 100}')
    r = port_spec(spec, None, check=True)
    assert r.ok, r.report.summary()
    assert 'g.input("input_ids", shape, "int64"' in r.code
    assert "scaled_dot_product_attention(" in r.code and not re.search(r"sym_size\w* \* ", r.code)
    assert "ranges={'input_ids_1': (1, 16, 128)}" in r.code      # token ids: any batch and length by default
    assert r.code.count("def bert_layer") == 1 and r.code.count("def bert_attention") == 1   # one per class
    assert not re.search(r"\bdims_\d|^\s+return \w+, ", r.code, re.M)     # no unused sizes or k/v outputs


@pytest.mark.slow
@pytest.mark.parametrize("spec,size", [("timm:efficientvit_b0", 64), ('timm:nest_tiny{"img_size": 64}', 64),
                                       ("torchvision:maxvit_t", 224), ("timm:dla34", 64),
                                       ('timm:volo_d1_224{"img_size": 64}', 64), ("timm:sequencer2d_s", 56)])
def test_corpus_models_check(spec, size):
    r = port_spec(spec, None, {"x": ((1, 3, size, size), "float32")}, check=True)
    assert r.ok, r.report.summary()


def unsupported():
    return Unsupported()


def broken():
    raise RuntimeError("this constructor fails")


class FrozenSize(nn.Module):
    def forward(self, x):
        return x.reshape(x.shape[0], int(x.shape[1]) // 2, 2, x.shape[2])   # int(): a size frozen to the example's


class RaisesInForward(nn.Module):
    def forward(self, x):
        raise ValueError("inputs of 4 features are not accepted")


def frozen_size():
    return FrozenSize()


def raises_in_forward():
    return RaisesInForward()


def no_module():
    return 42


def downloads():
    torch.hub.load_state_dict_from_url("https://example.invalid/weights.pth", progress=False)


@pytest.mark.parametrize("spec,args", [
    ('transformers:GPT2Model{"n_embd": 32, "n_layer": 1, "n_head": 2, "vocab_size": 64, "n_positions": 32, '
     '"use_cache": false}', []),
    ("test_port:broken", ["--input", "x:1x4"]),
])
def test_a_port_writes_a_file_that_loads_or_one_error_line_and_nothing(tmp_path, capsys, spec, args):
    from trtnet import zoo
    from trtnet.weights import load_weights
    out = tmp_path / "model.py"
    code = main([spec, "-o", str(out), *args])
    err = [ln for ln in capsys.readouterr().err.splitlines() if not ln.startswith("[transformers]")]
    if code == 0:   # it loads and records with the weights it wrote
        zoo.get(str(out)).graph(load_weights(str(tmp_path / "model.safetensors")))
        return
    assert code == 1 and len(err) == 1 and err[0].startswith("error: "), err
    assert not os.listdir(tmp_path)
    if "does not record" in err[0]:
        assert re.search(r"generated line \d+ `.+`: ", err[0]) and "tmp" not in err[0]


def test_text_transformer_at_a_dynamic_length_checks_at_both_ends(tmp_path, capsys):
    from trtnet.check.__main__ import main as check
    out = str(tmp_path / "distilbert.py")
    spec = ('transformers:DistilBertModel{"vocab_size": 100, "dim": 64, "n_layers": 2, "n_heads": 4, '
            '"hidden_dim": 128, "max_position_embeddings": 256}')
    assert main([spec, "-o", out, "--input", "input_ids:2x12:int64", "--dynamic", "input_ids:0,1"]) == 0
    code = open(out).read()
    body = [ln for ln in code[code.index("\ndef "):].splitlines() if "ranges=" not in ln]
    assert not any(re.search(r"(?<![\w.-])(12|24)(?![\w.])", ln) for ln in body), code     # no example length frozen
    assert re.search(r'reshape\(fc\(x, w\["q_lin"\]\), \(\w+, \w+, 4, 16\)\)', code)   # heads explicit
    capsys.readouterr()
    assert check([out, "--shapes", "input_ids:1x4,2x64,4x128"]) == 0
    text = capsys.readouterr().out
    assert "N=1, input_ids_1=4" in text and "N=4, input_ids_1=128" in text and text.count("PASS") == 2, text


@pytest.mark.parametrize("spec,args,expected", [
    ("test_port:unsupported", ["--input", "x:1x3x8x8"],
     [r"test_port\.py:\d+: .*unsupported fft_fft2", r"test_port\.py:\d+: .*unsupported tensor\.real",
      r"test_port\.py:\d+: .*unsupported special_i0"]),
    ("test_port:frozen_size", ["--input", "x:1x4x4", "--dynamic", "x:0,1"],
     [r"test_port\.py:\d+: return x\.reshape\(.*frozen.*at x 2x8x4 it fails"]),
    ("timm:nosuchmodel", [], [r"cannot port timm:nosuchmodel: .*[Uu]nknown model"]),
    ("torchvision:squeezenet1_0", ["--dynamic", "x:9"], [r"dynamic axis 9 of input 'x': it has 4 axes"]),
    ("test_port:no_module", ["--input", "x:1x4"], [r"returned int, expected a torch\.nn\.Module"]),
    ("test_port:raises_in_forward", ["--input", "x:1x4"],
     [r"test_port\.py:\d+: `raise ValueError\(.*`: inputs of 4 features are not accepted"]),
    ('torchvision:retinanet_resnet50_fpn{"weights_backbone": "DEFAULT"}', [],
     [r"weights_backbone='DEFAULT' would download weights, and a port never downloads"]),
    ("test_port:downloads", [], [r"would download \(https://example\.invalid/weights\.pth\)"]),
])
def test_a_failing_port_says_why_on_error_lines_and_writes_nothing(tmp_path, capsys, spec, args, expected):
    code = main([spec, "-o", str(tmp_path / "model.py"), *args])
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert code == 1 and "Traceback" not in err, err
    assert len(errors) == len(expected), err
    for pattern in expected:
        assert any(re.search(pattern, ln) for ln in errors), (pattern, errors)
    assert not os.listdir(tmp_path)


class Twice(nn.Module):
    """One block applied twice: its weights are shared (as ALBERT's layers)."""

    def __init__(self):
        super().__init__()
        self.head = Head()

    def forward(self, x):
        return self.head(self.head(x))


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return torch.tanh(self.fc(x)) + x


def test_a_module_called_twice_is_one_function_called_twice():
    r = port(Twice(), torch.randn(1, 8), check=True)
    assert r.ok, r.report.summary()
    assert r.code.count("def head(x, w):") == 1 and len(re.findall(r'head\(\w+, w\["head"\]\)', r.code)) == 2, r.code


class KeywordAttention(nn.Module):
    """DETR's encoder: position-embedded query and key, the value (by keyword) without; a floor division of
    integer indices as detection heads write it."""

    def __init__(self):
        super().__init__()
        self.ma, self.pos = nn.MultiheadAttention(8, 2, batch_first=True), nn.Parameter(torch.randn(1, 6, 8))

    def forward(self, x):
        q = x + self.pos
        return self.ma(q, q, value=x)[0], torch.div(x.argmax(-1), 3, rounding_mode="floor")


def test_keyword_value_and_floor_division_keep_their_meaning():
    r = port(KeywordAttention(), torch.randn(1, 6, 8), check=True)
    assert r.ok, r.report.summary()
    assert re.search(r"multi_head_attention\((\w+), \1, x, ", r.code) and "// 3" in r.code, r.code


class SkipInit(nn.Module):
    """NFNet's residual gain: an in-place multiply whose result is read through the original name."""

    def __init__(self):
        super().__init__()
        self.fc, self.gain = nn.Linear(8, 8), nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        out = self.fc(x)
        out.mul_(self.gain)
        return out * 0.2 + x


def test_an_in_place_change_reaches_the_later_uses_of_its_tensor():
    r = port(SkipInit(), torch.randn(1, 8), check=True)
    assert r.ok, r.report.summary()
    assert "* 0.5" in r.code, r.code


class BatchFold(nn.Module):
    """LeViT's norm: a BatchNorm1d over batch and tokens merged, then the input's shape back by reshape_as."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(8)

    def forward(self, x):
        return self.bn(x.flatten(0, 1)).reshape_as(x) + x.view_as(x)


def test_reshape_as_takes_the_other_tensors_shape_at_any_batch():
    m = BatchFold()
    m.bn.running_mean.normal_(), m.bn.running_var.uniform_(0.5, 2)
    r = port(m, torch.randn(1, 5, 8), check=True)     # checked at batch 2 as well
    assert r.ok, r.report.summary()
    assert "x.shape)" in r.code, r.code


class InputNamed(nn.Module):
    """torchvision's segmentation models name their one input `input`."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, input):
        return self.fc(input)


@pytest.mark.parametrize("stem", ["pad", "class", "register"])
def test_a_file_named_after_a_trtnet_op_or_keyword_records(stem, tmp_path):
    """The model's function takes another name where the file's would hide an import or is no Python name."""
    from trtnet import zoo
    from trtnet.weights import load_weights
    module = torch.nn.Sequential(torch.nn.ZeroPad2d(1), torch.nn.Conv2d(3, 4, 3)).eval()
    r = port(module, {"input": torch.randn(1, 3, 8, 8)}, str(tmp_path / f"{stem}.py"), check=True)
    assert r.ok and f"def {stem}_net(" in r.code, r.report.summary() if r.report else r.code
    graph = zoo.get(r.path).graph(load_weights(r.weights))
    assert [tuple(o.shape[1:]) for o in graph.outputs] == [(4, 8, 8)]


def test_one_input_takes_the_name_forward_gives_it():
    from trtnet.port.capture import example_tensors
    examples = example_tensors({"x": ((1, 4), "float32")}, InputNamed())
    r = port(InputNamed(), examples, check=True)
    assert list(examples) == ["input"] and r.ok, r.report.summary()


class GlobalQuery(nn.Module):
    """GCViT's global query: one query repeated along the batch by repeat_interleave, and a channel repeat."""

    def __init__(self):
        super().__init__()
        self.q = nn.Parameter(torch.randn(1, 3, 4))

    def forward(self, x):
        q = self.q.repeat_interleave(x.shape[0] // self.q.shape[0], dim=0)
        return x * q + x.repeat_interleave(2, dim=-1)[..., :4]


def test_repeat_interleave_by_a_size_checks_at_any_batch():
    r = port(GlobalQuery(), torch.randn(1, 3, 4), check=True)     # checked at batch 2 as well
    assert r.ok, r.report.summary()
    assert "x.shape[0]" in r.code, r.code       # the repeats follow the batch


class CeilStride(nn.Module):
    """torchvision's AnchorGenerator: a level's stride as image size // grid size, the grid from stride-2 convs
    with ceil-sized outputs (ceil(h / 32)). 64 // 2 and 128 // 4 are both 32, but 72 // 3 is 24: doubling alone
    cannot tell the stride from a constant."""

    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 4, 4, 3, 2, 1) for i in range(5)])

    def forward(self, x):
        feat = self.convs(x)
        sy, sx = x.shape[2] // feat.shape[2], x.shape[3] // feat.shape[3]
        return feat + (torch.arange(feat.shape[2]) * sy)[:, None] + torch.arange(feat.shape[3]) * sx


def test_a_size_that_doubling_keeps_is_not_folded_when_other_sizes_change_it(tmp_path):
    from trtnet import zoo
    from trtnet.check.report import check_graph_at
    from trtnet.weights import load_weights
    torch.manual_seed(0)
    module = CeilStride().eval()
    r = port(module, torch.randn(1, 3, 64, 64), str(tmp_path / "strides.py"), dynamic={"x": (0, 2, 3)}, check=True)
    assert r.ok, r.report.summary()
    graph = zoo.get(r.path).graph(load_weights(r.weights))
    reports = check_graph_at(graph, reference=module, shapes=[{"N": 1, "H": 72, "W": 72}, {"N": 2, "H": 80, "W": 88}])
    assert [x.ok for x in reports] == [True, True], [x.summary() for x in reports]


class GroupsOfFour(nn.Module):
    """A sequence padded to groups of four: the padding (-n) % 4 and n / ceil(n / 4) are 0 and 4 at 8 and 16."""

    def forward(self, x):
        return x * (x.shape[1] / -(-x.shape[1] // 4)) + (-x.shape[1]) % 4


def test_padding_to_a_multiple_follows_the_sequence_length(tmp_path):
    from trtnet import zoo
    from trtnet.check.report import check_graph_at
    from trtnet.weights import load_weights
    module = GroupsOfFour()
    r = port(module, torch.randn(1, 8, 3), str(tmp_path / "groups.py"), dynamic={"x": (0, 1)}, check=True)
    assert r.ok, r.report.summary()
    graph = zoo.get(r.path).graph(load_weights(r.weights))
    reports = check_graph_at(graph, reference=module, shapes=[{"N": 1, "x_1": 6}, {"N": 2, "x_1": 13}])
    assert [x.ok for x in reports] == [True, True], [x.summary() for x in reports]


class SizeTables(nn.Module):
    """Tables from the run-time size, as detectors make anchors and positional tables: a grid of aranges divided
    by torch.tensor([w, h]), a valid mask, sizes in arithmetic with tensors and Python floats of sizes (h / w:
    the same when both double, so only a check at another aspect ratio tells it from a constant)."""

    def forward(self, x):
        h, w = x.shape[2:]
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(end=w).float(), indexing="ij")
        grid = (torch.stack([xs, ys], -1) + 0.5) / torch.tensor([w, h], dtype=torch.float32)
        valid = ((grid > 0.2) & (grid < 0.8)).all(-1)
        return x * grid.sum(-1) * (h / w) + valid + 1 / (h * w - x) + ys / (h + 1e-6)


def test_tables_from_run_time_sizes_check_at_other_sizes(tmp_path):
    from trtnet import zoo
    from trtnet.check.report import check_graph_at
    from trtnet.weights import load_weights
    module = SizeTables()
    r = port(module, torch.randn(1, 1, 8, 12), str(tmp_path / "tables.py"), dynamic={"x": (0, 2, 3)}, check=True)
    assert r.ok, r.report.summary()
    graph = zoo.get(r.path).graph(load_weights(r.weights))
    reports = check_graph_at(graph, reference=module, shapes=[{"N": 3, "H": 16, "W": 6}, {"N": 1, "H": 5, "W": 20}])
    assert [x.ok for x in reports] == [True, True], [x.summary() for x in reports]
    torch.fx.symbolic_trace(nn.Linear(2, 2))     # torch.tensor, wrapped while the port traced, is torch's again


class CachedTable(nn.Module):
    """timm's GPSA: a table of the token count cached in forward as a non-persistent buffer, computed anew when
    the count differs (zeros filled by index assignments), then read again."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 8)
        self.register_buffer("table", torch.zeros(1, 1, 3), persistent=False)

    def forward(self, x):
        n = x.shape[1]
        if self.table.shape[1] != n:
            table = torch.zeros(1, n, 3)
            pos = torch.arange(n, dtype=torch.float32) / n
            table[:, :, 0], table[:, :, 1], table[:, :, 2] = pos, pos * pos, 1.0
            self.table = table
        return x + self.fc(self.table).expand(x.shape[0], -1, -1)


def test_a_table_cached_in_forward_is_computed_and_the_module_left_as_it_was(tmp_path):
    from trtnet import zoo
    from trtnet.check.report import check_graph_at
    from trtnet.port.capture import trace
    from trtnet.weights import load_weights
    module = CachedTable().eval()
    before, x = module.table, torch.randn(1, 6, 8)
    trace(module, {"x": x})
    assert module.table is before and "table" in module._buffers and not any(
        isinstance(v, torch.fx.Proxy) for m in module.modules() for v in [*vars(m).values(), *m._buffers.values()])
    r = port(module, x, check=True)                 # the table folded at the example's size, checked at batch 2
    assert r.ok and "arange" not in r.code, r.report.summary()
    assert module.table is before                   # the port's own runs leave nothing cached
    with torch.no_grad():
        module(x)                                   # the module's own run caches the table at 6 tokens
    with pytest.raises(PortError, match=r"test_port.py:\d+: return x \+ self.fc.*frozen"):
        port(module, x, dynamic={"x": (1,)})
    module = CachedTable().eval()       # nothing cached yet: the trace computes the table
    r = port(module, x, str(tmp_path / "cached.py"), dynamic={"x": (1,)}, check=True)
    assert r.ok and "arange" in r.code, r.report.summary()   # the table follows the token count
    graph = zoo.get(r.path).graph(load_weights(r.weights))
    reports = check_graph_at(graph, reference=module, shapes=[{"N": 2, "x_1": 11}, {"N": 1, "x_1": 3}])
    assert [x.ok for x in reports] == [True, True], [x.summary() for x in reports]


class RotateHalf(nn.Module):
    """Rotary embeddings (timm's EVA): interleaved halves stacked, then reshaped to the input's own shape."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        y = self.fc(x)
        return torch.stack([-y[..., 1::2], y[..., ::2]], -1).reshape(y.shape) * 0.5 + y


def test_a_reshape_to_another_tensors_shape_checks_at_any_batch():
    r = port(RotateHalf(), torch.randn(1, 3, 8), check=True)     # checked at batch 2 as well
    assert r.ok, r.report.summary()
    assert max(m["rel"] for m in r.report.final.values()) < 1e-5


class VectorNorms(nn.Module):
    """ConvNeXt-V2's global response norm (linalg.vector_norm over two dims) and CLIP's x / x.norm(dim=-1)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        y = self.fc(x)
        g = torch.linalg.vector_norm(y, ord=2, dim=(1, 2), keepdim=True)
        unit = y / y.norm(dim=-1, keepdim=True)
        return y * g / g.mean(dim=-1, keepdim=True) + unit + torch.norm(y, 1, -1)[..., None]


def test_vector_norms_check_against_torch():
    r = port(VectorNorms(), torch.randn(1, 3, 8), check=True)     # checked at batch 2 as well
    assert r.ok, r.report.summary()
    assert max(m["rel"] for m in r.report.final.values()) < 1e-5
    assert "sqrt(sum(" in r.code and "sum(abs(" in r.code, r.code


class WholeSliceAssigned(nn.Module):
    """timm's MViT-v2: attn[:, :, off:, off:] = attn[:, :, off:, off:] + bias, the offset 0 without a class token."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        attn, off = self.fc(x), 0
        attn[:, off:, off:] = attn[:, off:, off:] + x
        return attn.softmax(-1)


def test_a_whole_slice_assigned_in_place_checks_at_any_batch():
    r = port(WholeSliceAssigned(), torch.randn(1, 3, 8), check=True)     # checked at batch 2 as well
    assert r.ok, r.report.summary()
    assert max(m["rel"] for m in r.report.final.values()) < 1e-5


class SlicesAssigned(nn.Module):
    """Slices assigned at offsets: a class token kept (x[:, 1:] = ...), run-time bounds, from the end, with a step
    and beside an integer index, values of the slice's shape and broadcast ones."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        y, n = self.fc(x), x.shape[1]
        y[:, 1:n - 1] = y[:, 1:n - 1] * 2
        y[:, n // 2:, 2:6] = x[:, n // 2:, :4]
        y[..., -3:] = y[..., :3] + 1
        y[:, ::2, 1::3] = 0.5
        y[:, 0, 5:] = x[:, 0, :3]
        return y


def test_slices_assigned_at_offsets_check_at_other_sizes(tmp_path):
    from trtnet import zoo
    from trtnet.check.report import check_graph_at
    from trtnet.weights import load_weights
    module = SlicesAssigned().eval()
    r = port(module, torch.randn(1, 6, 8), str(tmp_path / "slices.py"), dynamic={"x": (1,)}, check=True)
    assert r.ok, r.report.summary()
    assert "index_select(" in r.code and "size1 - 1" in r.code, r.code     # the bounds follow the length
    graph = zoo.get(r.path).graph(load_weights(r.weights))
    reports = check_graph_at(graph, reference=module, shapes=[{"N": 2, "x_1": 11}, {"N": 1, "x_1": 3}])
    assert [x.ok for x in reports] == [True, True], [x.summary() for x in reports]
    assert max(m["rel"] for x in reports for m in x.final.values()) < 1e-5


class Outlook(nn.Module):
    """VOLO's outlook attention: windows unfolded, weighted, then folded back (F.fold, nn.Fold), overlaps summed."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.fold = nn.Fold((6, 6), 3, padding=1, stride=2)

    def forward(self, x):
        h, w = x.shape[2:]
        cols = F.unfold(self.fc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), 3, padding=1, stride=2)
        return self.fold(cols * 2) + F.fold(cols, (h, w), (3, 3), dilation=(1, 1), padding=1, stride=2)


def test_fold_checks_against_torch_at_any_batch():
    r = port(Outlook(), torch.randn(1, 4, 6, 6), check=True)     # checked at batch 2 as well
    assert r.ok, r.report.summary()
    assert len(re.findall(r"\bfold\(", r.code)) == 2 and max(m["rel"] for m in r.report.final.values()) < 1e-5, r.code


class Recurrent(nn.Module):
    """Sequencer's bidirectional batch-first LSTM with learned initial states, then a two-layer GRU over time and
    the cells on the last step."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 3, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(6, 5, num_layers=2)
        self.cell, self.gru_cell = nn.LSTMCell(5, 4), nn.GRUCell(4, 4)
        self.h0, self.c0 = nn.Parameter(torch.randn(2, 1, 3)), nn.Parameter(torch.randn(2, 1, 3))

    def forward(self, x):
        n = x.shape[0]
        y, (h, c) = self.rnn(x, (self.h0.expand(-1, n, -1).contiguous(), self.c0.expand(-1, n, -1).contiguous()))
        z, hg = self.gru(y.transpose(0, 1))
        h1, c1 = self.cell(z[-1])
        return y.sum(-1) + h.sum(0).mean(-1, keepdim=True), self.gru_cell(h1, c1) + hg[-1, :, :4]


def test_recurrent_modules_check_at_other_lengths(tmp_path):
    from trtnet import zoo
    from trtnet.check.report import check_graph_at
    from trtnet.weights import load_weights
    module = Recurrent().eval()
    r = port(module, torch.randn(1, 5, 4), str(tmp_path / "rnn.py"), dynamic={"x": (1,)}, check=True)
    assert r.ok, r.report.summary()
    assert "bidirectional=True, batch_first=True" in r.code and "gru(" in r.code, r.code
    graph = zoo.get(r.path).graph(load_weights(r.weights))
    reports = check_graph_at(graph, reference=module, shapes=[{"N": 2, "x_1": 9}, {"N": 3, "x_1": 2}])
    assert [x.ok for x in reports] == [True, True], [x.summary() for x in reports]
    assert max(m["rel"] for x in reports for m in x.final.values()) < 1e-5


class MultiQuery(nn.Module):
    """MobileNetV5's multi-query attention (one key/value head that scaled_dot_product_attention broadcasts) and
    MetaFormer's squared ReLU (torch.square)."""

    def __init__(self):
        super().__init__()
        self.q, self.kv = nn.Linear(8, 8), nn.Linear(8, 4)

    def forward(self, x):
        n, t, _ = x.shape
        q = self.q(x).reshape(n, t, 4, 2).transpose(1, 2)
        k, v = self.kv(x).unsqueeze(1).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, 8)
        return torch.square(torch.relu(out)) + torch.square(x)


def test_multi_query_attention_and_square_check_at_any_batch():
    r = port(MultiQuery(), torch.randn(1, 5, 8), dynamic={"x": (1,)}, check=True)     # checked at batch 2 too
    assert r.ok, r.report.summary()
    assert "enable_gqa=True" in r.code and "** 2" in r.code, r.code
    assert max(m["rel"] for m in r.report.final.values()) < 1e-5


class SlidingWindows(nn.Module):
    """HaloNet's Tensor.unfold (overlapping windows along one axis; F.unfold is im2col) and a non-overlapping one
    from the end."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        return y.unfold(1, 3, 2).sum((-1, -2)), y.transpose(1, 2).unfold(-1, 2, 2).mean(-1)


def test_sliding_windows_check_at_other_lengths(tmp_path):
    from trtnet import zoo
    from trtnet.check.report import check_graph_at
    from trtnet.weights import load_weights
    module = SlidingWindows().eval()
    r = port(module, torch.randn(1, 8, 4), str(tmp_path / "windows.py"), dynamic={"x": (1,)}, check=True)
    assert r.ok, r.report.summary()
    assert "unfold(" not in r.code and "index_select(" in r.code, r.code
    graph = zoo.get(r.path).graph(load_weights(r.weights))
    reports = check_graph_at(graph, reference=module, shapes=[{"N": 2, "x_1": 11}, {"N": 1, "x_1": 4}])
    assert [x.ok for x in reports] == [True, True], [x.summary() for x in reports]
    assert max(m["rel"] for x in reports for m in x.final.values()) < 1e-5


class RmsNorms(nn.Module):
    """nn.RMSNorm and F.rms_norm (timm's RmsNorm) with and without weights, beside weightless F.layer_norm and
    F.group_norm: trtnet's norms take a WeightMap or None where torch takes tensors."""

    def __init__(self):
        super().__init__()
        self.fc, self.rms = nn.Linear(8, 8), nn.RMSNorm(8)
        self.flat = nn.RMSNorm((3, 8), eps=1e-3, elementwise_affine=False)
        self.scale = nn.Parameter(torch.randn(8))

    def forward(self, x):
        y = self.fc(x)
        return (self.rms(y) + self.flat(y) + F.rms_norm(y, (8,), self.scale, 1e-6) + F.rms_norm(y, [8]) +
                F.layer_norm(y, (8,)) + F.group_norm(y.transpose(1, 2), 2).transpose(1, 2))


def test_rms_norms_check_against_torch_at_any_batch():
    r = port(RmsNorms(), torch.randn(1, 3, 8), check=True)     # checked at batch 2 as well
    assert r.ok, r.report.summary()
    assert r.code.count("rms_norm(") == 4 and "constant(" not in r.code, r.code
    assert max(m["rel"] for m in r.report.final.values()) < 1e-5


class BiasBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, bias):
        return self.fc(x).softmax(-1) + bias


class SharedBias(nn.Module):
    """timm's shared relative-position bias (vit_srelpos): one table computed by a module from a buffer, then
    read by every block."""

    def __init__(self):
        super().__init__()
        self.table, self.blocks = nn.Linear(2, 4), nn.ModuleList(BiasBlock() for _ in range(3))
        self.register_buffer("coords", torch.randn(4, 2))

    def forward(self, x):
        bias = self.table(self.coords).t().contiguous()
        for block in self.blocks:
            x = block(x, bias)
        return x


def test_a_constant_every_block_reads_is_passed_to_each_blocks_function():
    r = port(SharedBias(), torch.randn(1, 4, 4), check=True)     # checked at batch 2 as well
    assert r.ok, r.report.summary()
    assert re.search(r"^def bias_block\(x, x1, w\):", r.code, re.M), r.code
    assert max(m["rel"] for m in r.report.final.values()) < 1e-5


class ResizeAndPool(nn.Module):
    """Pooling and resizing arguments beyond the defaults: divisor_override, return_indices, recompute_scale_factor,
    nearest-exact and antialiased bilinear resizing."""

    def __init__(self):
        super().__init__()
        self.avg = nn.AvgPool2d(3, 2, 1, divisor_override=5)
        self.mp = nn.MaxPool2d(2, return_indices=True)
        self.up = nn.Upsample(scale_factor=1.5, mode="bilinear", recompute_scale_factor=True)

    def forward(self, x):
        values, indices = self.mp(x)
        return {"avg": self.avg(x), "values": values, "indices": indices.float(), "up": self.up(x),
                "exact": F.interpolate(x, scale_factor=2, mode="nearest-exact"),
                "aa": F.interpolate(x, size=(5, 6), mode="bilinear", antialias=True)}


def test_pooling_and_resizing_arguments_keep_their_meaning():
    r = port(ResizeAndPool(), torch.randn(1, 3, 12, 14), check=True)
    assert r.ok, r.report.summary()
    for text in ("divisor_override=5", "return_indices=True", "recompute_scale_factor=True", "'nearest-exact'",
                 "antialias=True"):
        assert text in r.code, text


class Hash(nn.Module):
    """Integer bit twiddling, as hashing embeddings do it: `^`, `&`, `|` and `~` are bitwise on integers, `>>` and
    `<<` arithmetic shifts."""

    def forward(self, x):
        h = (x * 1000 - 20000).long() * 2654435761
        return ((h ^ (h >> 16)) & 0xFFFF | 1) + (~h & 7) + ((h << 3) >> 40)


def test_bitwise_operators_on_integers_keep_torchs_meaning():
    r = port(Hash(), torch.rand(2, 8) * 50, check=True)
    assert r.ok, r.report.summary()
    assert all(op in r.code for op in ("^", "&", "|", "~", ">>", "<<")), r.code


class Unbatched(nn.Module):
    """2-D pooling of a (C, H, W) input: one image, as torch reads it, not C one-dimensional rows."""

    def __init__(self):
        super().__init__()
        self.pool, self.adaptive = nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(3)

    def forward(self, x):
        return self.pool(x).sum() + F.avg_pool2d(x, 3).sum() + F.adaptive_max_pool2d(x, 2) + self.adaptive(x)[:, :2, :2]


def test_pooling_of_an_unbatched_input_pools_both_spatial_axes():
    r = port(Unbatched(), torch.randn(3, 8, 10), check=True)
    assert r.ok, r.report.summary()
    assert r.code.count("dims=2") == 4, r.code
