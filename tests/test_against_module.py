"""Every layer against the user's own nn.Module: a mistake in a model file's graph is named at its layer, where the
graph's own reference executor (which shares the mistake) names none. The oracle is the module's forward, run
by PyTorch; trtnet's reference executor is not consulted for that column."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import trtnet as tn
from trtnet import harness, zoo
from trtnet.build import BuildOptions, compile_graph, new_report, verify
from trtnet.check.module import capture, counterparts, submodule_names
from trtnet.weights import save_safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

# One module, and one graph per planted mistake (`net` has none). Each mistake keeps every shape, so the graph
# records and the graph's reference executor agrees with TensorRT's network at every layer.
MODEL = '''
import functools

import numpy as np
import torch
from torch import nn
import trtnet as tn
from trtnet.zoo import register


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)) + x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=2, dilation=2)
        self.block = Block(8)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.act = nn.GELU()
        self.fc, self.head = nn.Linear(8, 8), nn.Linear(8, 4)

    def forward(self, x):
        x = self.act(self.down(self.block(self.stem(x))))
        return self.head(self.fc(x.mean((2, 3))))


def net(w, shape, bug=None):
    g = tn.Graph("net")
    d = 1 if bug == "dilation" else 2
    x = tn.conv(g.input("x", shape), w["stem"], 8, 3, padding=d, dilation=d)
    y = tn.bn(tn.conv(x, w["block.conv"], 8, 3, padding=1), w["block.bn"], eps=1e-3 if bug == "eps" else 1e-5)
    x = tn.relu(y if bug == "residual" else y + x, name="block.act")
    if bug == "padding":     # TensorFlow's 'same': all padding after, none before; the same shape
        x = tn.conv(tn.pad(x, (0, 1, 0, 1)), w["down"], 8, 3, stride=2)
    else:
        x = tn.conv(x, w["down"], 8, 3, stride=2, padding=1)
    x = (tn.relu if bug == "activation" else tn.gelu)(x, name="act")
    fc = w["fc"]
    if bug == "fc":          # the (out, in) weight taken as (in, out): square, so it records
        fc = tn.WeightMap({"fc.weight": np.ascontiguousarray(w["fc.weight"].T), "fc.bias": w["fc.bias"]})["fc"]
    g.output(tn.fc(tn.fc(tn.mean(x, dim=(2, 3)), fc, 8), w["head"], 4), "y")
    return g


register("net", (3, 8, 8), Net)(net)
for bug in ("eps", "dilation", "padding", "fc", "activation", "residual"):
    register("net_" + bug, (3, 8, 8), Net)(functools.partial(net, bug=bug))
'''

PLANTED = {"eps": "block.bn", "dilation": "stem", "padding": "down", "fc": "fc", "activation": "act",
           "residual": "block.act"}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    (d / "net.py").write_text(MODEL)
    return str(d / "net.py")


def load(model_file, name):
    spec = zoo.get(f"{model_file}:{name}")
    w = tn.WeightMap(harness.export_state(f"{model_file}:net"))
    return spec, w, spec.graph(w, None), harness.torch_reference(spec, w)


def test_the_faithful_graph_agrees_with_every_counterpart(model_file):
    _, _, graph, module = load(model_file, "net")
    for report in tn.check(graph, reference=module):
        assert report.ok and report.first_bad_module is None, report.table()
        compared = {r.name: r.mod for r in report.rows if r.mod is not None}
        assert set(PLANTED.values()) | {"block.conv"} <= set(compared), report.table()
        assert max(compared.values()) < 1e-5, report.table()


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_each_planted_mistake_is_named_at_its_layer(model_file, bug):
    _, _, graph, module = load(model_file, "net_" + bug)
    for report in tn.check(graph, reference=module):   # at N=1 and N=4
        assert not report.ok, report.table()
        assert report.first_bad is None, report.table()   # the graph's own reference shares the mistake
        assert report.first_bad_module == PLANTED[bug], report.table()
        assert f"first layer over tolerance against the module: '{PLANTED[bug]}'" in report.summary()


def test_command_line_and_build_name_the_layer(model_file, tmp_path):
    """The eps mistake fails the check although the outputs pass at N=1: the layer disagrees with the module."""
    save_safetensors(harness.export_state(f"{model_file}:net"), os.path.join(os.path.dirname(model_file),
                                                                             "net_eps.safetensors"))
    r = subprocess.run([sys.executable, "-m", "trtnet.check", f"{model_file}:net_eps"], env=ENV, cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.count("first layer over tolerance against the module: 'block.bn'") == 2, r.stdout
    row = next(line for line in r.stdout.splitlines() if line.startswith("block.bn "))
    assert "first mismatch against the module" in row, r.stdout
    spec, w, graph, _ = load(model_file, "net_dilation")   # its outputs fail too: an engine is not written
    o = BuildOptions(progress=False, output=str(tmp_path / "net.engine"))
    built = compile_graph(graph, spec, o)
    report = verify(new_report(built, spec, w, o), built, spec, w, options=o)
    assert not report.ok
    assert "first layer over tolerance against the module: 'stem'" in report.summary(), report.summary()
    spec, w, graph, _ = load(model_file, "net_eps")   # outputs within tolerance, a layer not: no engine either
    built = compile_graph(graph, spec, o)
    report = verify(new_report(built, spec, w, o), built, spec, w, options=o)
    assert not report.ok and all(m["rel"] <= report.tol for _, m in report.checks), report.summary()


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                        torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1))
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


def test_a_ported_file_is_compared_layer_by_layer(tmp_path):
    from trtnet.port import port
    torch.manual_seed(0)
    port(Small().eval(), torch.randn(1, 3, 8, 8), str(tmp_path / "small.py"), name="small")
    spec, w, graph = harness.load_model(str(tmp_path / "small.py"))
    for report in tn.check(graph, reference=harness.torch_reference(spec, w)):
        compared = {r.name for r in report.rows if r.mod is not None}
        assert report.ok and {"body.0", "body.1", "body.3"} <= compared, report.table()


def test_capture_copies_before_in_place_ops_and_marks_repeated_calls():
    relu = torch.nn.ReLU(inplace=True)
    seq = torch.nn.Sequential(torch.nn.Identity(), relu, relu)
    x = torch.tensor([-1.0, 2.0])
    with capture(seq, ["0", "1"]) as got:
        seq(x.clone())
    np.testing.assert_array_equal(got["0"], [-1.0, 2.0])      # before the in-place ReLU changed it
    assert got["1"] == "the submodule ran more than once"


def test_automatic_names_are_not_counterparts():
    """The graph's `gelu` (the op's own name) is no submodule's output, though the module has a `gelu`."""
    graph = tn.Graph("g")
    x = tn.relu(tn.gelu(graph.input("x", (8, 8, 8))), name="act")
    graph.output(x + x, "y")
    assert [n.name for n in graph.nodes] == ["x", "gelu", "act", "y"]
    module = torch.nn.ModuleDict({"gelu": torch.nn.GELU(), "act": torch.nn.ReLU()})
    assert submodule_names(module, graph) == ["act"]


def test_names_made_up_by_a_step_are_not_counterparts():
    """`flatten` (a reshape named by flatten's step) and the constant a named layer makes are made up; a
    convolution named by its weight view and a name derived from one given are not."""
    w = tn.WeightMap({"conv.weight": np.ones((2, 3, 1, 1), np.float32)})
    graph = tn.Graph("g")
    x = tn.conv(graph.input("x", (3, 4, 4)), w["conv"])
    y = tn.flatten(x, 1)
    graph.output(tn.add(tn.flatten(x, 1, name="flat"), 1.0, name="flat_plus") + y, "out")
    names = {n.name for n in graph.nodes}
    assert {"conv", "flatten", "flat", "flat_plus"} <= names
    assert "flatten" in graph.automatic and not {"conv", "flat", "flat_plus"} & graph.automatic
    assert [n.name for n in graph.nodes if n.op == "const"] and \
        {n.name for n in graph.nodes if n.op == "const"} <= graph.automatic
    module = torch.nn.ModuleDict({"conv": torch.nn.Conv2d(3, 2, 1), "flatten": torch.nn.Flatten()})
    assert submodule_names(module, graph) == ["conv"]


def test_a_submodule_that_continues_past_the_layer_has_no_counterpart():
    parts = counterparts(["block", "block.act", "out"], {"block": np.zeros(1), "block.act": np.zeros(1)})
    assert parts["block"] == "the submodule 'block' ends at a later layer"
    assert isinstance(parts["block.act"], np.ndarray) and parts["out"] == "no counterpart"


class FunctionalBlock(torch.nn.Module):
    """A residual block whose add and ReLU are functional: no submodule returns them."""

    def __init__(self, c):
        super().__init__()
        self.conv, self.bn = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.nn.functional.relu(self.bn(self.conv(x)) + x)


class FunctionalNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.block = torch.nn.Conv2d(3, 4, 3, padding=1), FunctionalBlock(4)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean((2, 3)))


def functional_graph(w, bug=False):
    """FunctionalNet's graph, its add and ReLU named after the fx nodes of `block`'s forward; `bug`: the residual
    adds the block's own value twice instead of its input."""
    g = tn.Graph("functional")
    x = tn.conv(g.input("x", (3, 6, 6)), w["stem"], 4, 3, padding=1)
    y = tn.bn(tn.conv(x, w["block.conv"], 4, 3, padding=1), w["block.bn"])
    x = tn.relu(tn.add(y, y if bug else x, name="block.add"), name="block.relu")
    g.output(tn.fc(tn.mean(x, dim=(2, 3)), w["head"], 2), "y")
    return g


@pytest.fixture(scope="module")
def functional_net():
    torch.manual_seed(0)
    module = FunctionalNet().eval()
    with torch.no_grad():   # statistics that make the block's BatchNorm matter
        module.block.bn.running_mean.uniform_(-0.5, 0.5)
        module.block.bn.running_var.uniform_(0.5, 2.0)
    return module, tn.WeightMap({k: v.numpy() for k, v in module.state_dict().items()})


def test_functional_values_are_compared_through_fx(functional_net):
    module, w = functional_net
    for report in tn.check(functional_graph(w), reference=module):
        compared = {r.name: r.mod for r in report.rows if r.mod is not None}
        assert {"block.add", "block.relu", "block.bn", "stem"} <= set(compared), report.table()
        assert report.ok and max(compared.values()) < 1e-5, report.table()


def test_a_mistake_in_a_functional_value_is_named_at_its_layer(functional_net):
    module, w = functional_net
    for report in tn.check(functional_graph(w, bug=True), reference=module):
        assert not report.ok and report.first_bad is None, report.table()
        assert report.first_bad_module == "block.add", report.table()
        assert next(r for r in report.rows if r.name == "block.bn").mod < 1e-5, report.table()


def test_functional_names_never_guess():
    """Only names `path.node` of an fx node of that submodule's own forward count; a forward fx cannot trace
    (data-dependent control flow) gives none, silently."""
    from trtnet.check.module import functional_names

    class Branchy(torch.nn.Module):
        def forward(self, x):
            return x + 1 if x.sum() > 0 else x - 1

    g = tn.Graph("g")
    x = g.input("x", (4,))
    g.output(tn.relu(tn.add(tn.relu(x, name="block.add_7"), x, name="block.add")), "y")
    module = torch.nn.ModuleDict({"block": FunctionalBlock(4)})
    assert {p: hit for p, (_, hit) in functional_names(module, g).items()} == {"block": {"add": "block.add"}}
    assert functional_names(torch.nn.ModuleDict({"block": Branchy()}), g) == {}
