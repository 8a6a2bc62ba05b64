"""The registries of ops, emitters, references and interpreter kernels refuse a name registered twice, naming
both places; op attributes are checked against their declaration when recorded and printed in its order."""
import os
import re

import numpy as np
import pytest

import trtnet as tn
from trtnet.check import interp
from trtnet.emit_trt import EMIT, emitter
from trtnet.ops import OPS
from trtnet.ops.core import Layer, op
from trtnet.reference import REF
from trtnet.reference.core import ref
from trtnet.registry import InternalError, Registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _line_of(path, text):
    """1-based line of the first line of `path` (relative to the repository) that contains `text`."""
    with open(os.path.join(ROOT, path)) as f:
        return next(i for i, line in enumerate(f, 1) if text in line)


def _here(text):
    return f"tests/test_registry.py:{_line_of('tests/test_registry.py', text)}"


def test_a_name_registered_twice_names_both_places():
    things = Registry("thing")

    @things.register("a", "b")
    def first():   # first registration
        pass

    with pytest.raises(InternalError) as e:
        @things.register("b")
        def second():   # second registration
            pass
    msg = str(e.value)
    assert "thing 'b' is registered twice" in msg
    assert _here("@things.register(\"a\", \"b\")") in msg and _here("@things.register(\"b\")") in msg
    assert things == {"a": first, "b": first}


@pytest.mark.parametrize("table,decorate,key,path,source", [
    (EMIT, emitter, "conv", "trtnet/emit_trt/conv.py", '@emitter("conv")'),
    (REF, ref, "conv", "trtnet/reference/conv.py", '@ref("conv")'),
    (OPS, op, "relu", "trtnet/ops/elementwise.py", "def relu("),
    (interp._LAYERS, lambda k: interp._layer(k, "IConvolutionLayer"), "CONVOLUTION", "trtnet/check/interp.py",
     '@_layer("CONVOLUTION"'),
])
def test_each_registry_refuses_a_second_definition(table, decorate, key, path, source):
    before = dict(table)
    with pytest.raises(InternalError) as e:
        decorate(key)(lambda *a: None)   # the second definition
    line = _line_of(path, source)
    if source.startswith("def "):   # an op's place is its first decorator, on the line above
        line -= 1
    assert f"'{key}' is registered twice: at {path}:{line} and at {_here('# the second definition')}" in str(e.value)
    assert table == before


def _x():
    return tn.Graph("t").input("x", (3, 4, 4))


@pytest.mark.parametrize("op_name,attrs,words", [
    ("relu", {"slope": 0.1}, "records attribute 'slope', which its declaration lacks"),
    ("softmax", {}, "does not record its declared attribute 'dim'"),
    ("softmax", {"dim": 1.0}, "attribute 'dim' is 1.0 of type float, declared int"),
    ("softmax", {"dim": True}, "attribute 'dim' is True of type bool, declared int"),
    ("leaky_relu", {"negative_slope": 1}, "attribute 'negative_slope' is 1 of type int, declared float"),
    ("clamp", {"min": "0", "max": None}, "attribute 'min' is '0' of type str, declared float or int or NoneType"),
])
def test_attributes_are_checked_when_recorded(op_name, attrs, words):
    x = _x()
    with pytest.raises(InternalError, match=rf"op '{op_name}' \(declared at trtnet/ops/\w+\.py:\d+\) {re.escape(words)}"):
        Layer(op_name, x).emit([x], x.shape, attrs)
    assert len(x.graph.nodes) == 1   # nothing recorded


def test_a_declaration_takes_types_only():
    with pytest.raises(InternalError, match="attribute 'stride' is declared 'tuple', not a type"):
        op("never_declared", stride="tuple")(lambda x: x)
    assert "never_declared" not in OPS


def test_print_shows_typed_attributes_in_declaration_order():
    x = _x()
    tn.leaky_relu(x, 1, name="leaky")
    tn.clamp(tn.cast(x, "int32"), 0, 6, name="int_clamp")
    tn.clamp(x, 0, 6, name="float_clamp")
    Layer("hardtanh", x).emit([x], x.shape, {"max_val": 2.0, "min_val": -2.0})
    tn.argmax(x, None, keepdim=True, name="flat_argmax")
    rows = {line.split()[0]: line for line in str(x.graph).splitlines()[2:]}
    assert "negative_slope=1.0" in rows["leaky"]
    assert "min=0, max=6" in rows["int_clamp"] and "min=0.0, max=6.0" in rows["float_clamp"]
    assert list(x.graph.nodes[-2].attrs) == ["min_val", "max_val"] and "min_val=-2.0, max_val=2.0" in rows["hardtanh"]
    assert "keepdim=True" in rows["flat_argmax"] and "axis" not in rows["flat_argmax"]   # None: not given


def test_numpy_numbers_from_a_model_are_recorded_as_declared():
    g = tn.Graph("t")
    x = g.input("x", (4, 9, 9))
    y = tn.conv(x, tn.WeightMap({"c.weight": np.zeros((6, 2, 3, 3), np.float32)})["c"], stride=2, padding=1,
                groups=np.int64(2))
    r = tn.arange(np.int64(1), np.float32(4.5), like=x)
    assert list(y.attrs) == ["kernel", "stride", "padding", "post_padding", "dilation", "groups", "out"]
    assert type(y.attrs["groups"]) is int and (type(r.attrs["start"]), type(r.attrs["end"])) == (int, float)
    assert ("kernel=(3, 3), stride=(2, 2), padding=(1, 1), post_padding=(1, 1), dilation=(1, 1), groups=2, out=6"
            in str(g))
