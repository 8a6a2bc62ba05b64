import os
import struct
import time
import tracemalloc

import numpy as np
import pytest
import torch

from trtnet import weights as W
from trtnet.weights import (MissingWeightError, WeightFileError, WeightMap, load_weights, save_safetensors,
                            save_wts)


def hexf(x):
    """Reference encoding, independent of save_wts."""
    return struct.pack(">f", x).hex()


def bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


def write(path, text):
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def assert_one_line(err, *parts):
    msg = str(err.value)
    assert "\n" not in msg, msg
    for part in parts:
        assert part in msg, msg


@pytest.fixture
def sd():
    rng = np.random.default_rng(0)
    return {
        "conv1.weight": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "bn1.weight": rng.standard_normal(8).astype(np.float32),
        "bn1.running_var": rng.random(8).astype(np.float32),
        "bn1.num_batches_tracked": np.array(7, np.int64),
        "layer1.0.conv1.weight": rng.standard_normal((8, 8, 1, 1)).astype(np.float32),
        "layer1.0.conv2.weight": rng.standard_normal((8, 8, 3, 3)).astype(np.float32),
        "fc.weight": rng.standard_normal((10, 8)).astype(np.float32),
        "fc.bias": np.zeros(10, np.float32),
    }


# --- .wts reading against reference text --------------------------------------------------------

def test_wts_reads_reference_text(tmp_path):
    a, b = [1.0, -2.5, 3.25e-3], [0.1]
    text = (f"2\r\nconv.weight {len(a)}  " + " ".join(hexf(x) for x in a) + "\r\n"  # gen_wts.py's double space
            + "fc.bias 1 " + hexf(b[0]).upper() + "\n\n")
    w = load_weights(write(tmp_path / "m.wts", text))
    assert list(w) == ["conv.weight", "fc.bias"]
    np.testing.assert_array_equal(bits(w["conv.weight"]), bits(a))
    np.testing.assert_array_equal(bits(w["fc.bias"]), bits(b))
    assert w["conv.weight"].dtype == np.float32 and w["conv.weight"].flags.c_contiguous


@pytest.mark.parametrize("tokens", [["0"], ["3f80000", "1", "0"], ["ffffffff", "7f800000", "80000000", "c0"],
                                    ["0", "3f800000"], ["a", "B", "cafe", "DEADBEEF"]])
def test_wts_unpadded_tokens(tmp_path, tokens):
    text = f"1\nt {len(tokens)} " + "\t ".join(tokens) + "\n"
    w = load_weights(write(tmp_path / "u.wts", text))
    expected = [struct.unpack(">f", bytes.fromhex(t.zfill(8)))[0] for t in tokens]
    np.testing.assert_array_equal(bits(w["t"]), bits(expected))


def test_wts_many_blocks(tmp_path):
    """More values than one parsing block, with a fall back to the general path in a later block."""
    n = 2 * W._CHUNK + 5
    a = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    padded = " ".join(hexf(x) for x in a)
    tokens = padded.split()
    tokens[W._CHUNK + 3] = tokens[W._CHUNK + 3].lstrip("0") or "0"  # still valid, no longer 8 digits
    tokens[W._CHUNK + 4] = "0"
    b = a.copy()
    b[W._CHUNK + 4] = 0.0
    write(tmp_path / "a.wts", f"1\nbig {n} {padded}\n")
    write(tmp_path / "b.wts", f"1\nbig {n} {' '.join(tokens)}\n")
    np.testing.assert_array_equal(bits(load_weights(tmp_path / "a.wts")["big"]), bits(a))
    np.testing.assert_array_equal(bits(load_weights(tmp_path / "b.wts")["big"]), bits(b))


def test_wts_empty_tensor_and_no_final_newline(tmp_path):
    w = load_weights(write(tmp_path / "e.wts", f"2\nempty 0\nx 1 {hexf(2.0)}"))
    assert w["empty"].shape == (0,) and w["x"].tolist() == [2.0]


# --- writers ----------------------------------------------------------------------------------------

def test_save_wts_matches_reference_text(tmp_path):
    save_wts({"a": np.array([[1.0, -0.0], [0.5, 3e-40]]), "n": np.array(3, np.int64)}, tmp_path / "w.wts")
    expected = ("2\n"
                f"a 4 {hexf(1.0)} {hexf(-0.0)} {hexf(0.5)} {hexf(3e-40)}\n"
                f"n 1 {hexf(3.0)}\n")
    assert (tmp_path / "w.wts").read_text() == expected


def test_wts_round_trip(tmp_path, sd):
    save_wts(sd, tmp_path / "m.wts")
    w = load_weights(tmp_path / "m.wts")
    assert list(w) == list(sd)
    for name, a in sd.items():
        assert w[name].shape == (a.size,) and w[name].dtype == np.float32
        np.testing.assert_array_equal(w[name], a.reshape(-1).astype(np.float32))


def test_special_values_bit_exact(tmp_path):
    special = np.array([0x7FC00000, 0x7FA00001, 0xFFC12345, 0x7F800000, 0xFF800000, 0x80000000, 0x00000000,
                        0x00000001, 0x807FFFFF, 0x00800000, 0x7F7FFFFF], np.uint32).view(np.float32)
    save_wts({"s": special}, tmp_path / "s.wts")
    save_safetensors({"s": special}, tmp_path / "s.safetensors")
    torch.save({"s": torch.from_numpy(special.copy())}, tmp_path / "s.pth")
    for suffix in ("wts", "safetensors", "pth"):
        np.testing.assert_array_equal(bits(load_weights(tmp_path / f"s.{suffix}")["s"]), special.view(np.uint32))


def test_safetensors_round_trip(tmp_path, sd):
    save_safetensors(sd, tmp_path / "sub" / "m.safetensors")
    w = load_weights(tmp_path / "sub" / "m.safetensors")
    assert sorted(w) == sorted(sd)
    for name, a in sd.items():
        assert w[name].dtype == a.dtype and w[name].shape == a.shape
        np.testing.assert_array_equal(w[name], a)


def test_safetensors_half_types_become_float32(tmp_path):
    from safetensors.torch import save_file
    t = torch.tensor([1.5, -2.0, 3.140625, 65504.0])
    save_file({"h": t.half(), "b": t.bfloat16(), "i": torch.arange(3, dtype=torch.int32)}, tmp_path / "h.safetensors")
    w = load_weights(tmp_path / "h.safetensors")
    np.testing.assert_array_equal(w["h"], t.half().float().numpy())
    np.testing.assert_array_equal(w["b"], t.bfloat16().float().numpy())
    assert w["h"].dtype == w["b"].dtype == np.float32
    assert w["i"].dtype == np.int32 and w["i"].tolist() == [0, 1, 2]


def test_writers_are_atomic(tmp_path):
    target = tmp_path / "m.wts"
    save_wts({"a": [1.0]}, target)
    before = target.read_bytes()
    with pytest.raises(ValueError):
        save_wts({"a": [2.0], "bad name": [1.0]}, target)
    with pytest.raises(Exception):
        save_safetensors({"a": np.array(["x"])}, tmp_path / "m.safetensors")
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.wts"]


def test_writers_accept_torch_tensors(tmp_path):
    t = torch.arange(6, dtype=torch.float16).reshape(2, 3).t()  # not contiguous
    save_wts({"t": t}, tmp_path / "t.wts")
    save_safetensors({"t": t}, tmp_path / "t.safetensors")
    np.testing.assert_array_equal(load_weights(tmp_path / "t.wts")["t"], [0, 3, 1, 4, 2, 5])
    np.testing.assert_array_equal(load_weights(tmp_path / "t.safetensors")["t"], [[0, 3], [1, 4], [2, 5]])


# --- .pth -------------------------------------------------------------------------------------------

def torch_sd(sd):
    return {k: torch.from_numpy(np.array(v)) for k, v in sd.items()}


def check_same(w, sd):
    assert sorted(w) == sorted(sd)
    for name, a in sd.items():
        assert w[name].shape == a.shape and w[name].dtype == a.dtype
        np.testing.assert_array_equal(w[name], a)


def test_pth_state_dict(tmp_path, sd):
    torch.save(torch_sd(sd), tmp_path / "m.pth")
    check_same(load_weights(tmp_path / "m.pth"), sd)


@pytest.mark.parametrize("key", ["state_dict", "model", "model_state_dict", "net", "weights", "ema"])
def test_pth_checkpoint_dict(tmp_path, sd, key):
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}, key: torch_sd(sd)}, tmp_path / "c.pt")
    check_same(load_weights(tmp_path / "c.pt"), sd)


def test_pth_module_prefix(tmp_path, sd):
    torch.save({"model": {"module." + k: v for k, v in torch_sd(sd).items()}}, tmp_path / "dp.pth")
    check_same(load_weights(tmp_path / "dp.pth"), sd)
    torch.save({"module.a": torch.ones(1), "b": torch.ones(1)}, tmp_path / "mixed.pth")
    assert sorted(load_weights(tmp_path / "mixed.pth")) == ["b", "module.a"]


def test_pth_half_and_strided_become_float32(tmp_path):
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    torch.save({"h": t.half(), "b": t.bfloat16(), "s": t.t()}, tmp_path / "h.pth")
    w = load_weights(tmp_path / "h.pth")
    for name in "hb":
        assert w[name].dtype == np.float32
        np.testing.assert_array_equal(w[name], t.numpy())
    assert w["s"].flags.c_contiguous
    np.testing.assert_array_equal(w["s"], t.numpy().T)


class Custom:
    pass


@pytest.mark.parametrize("obj, says", [(torch.nn.Linear(2, 2), "torch.nn.modules.linear.Linear"),
                                       ({"w": Custom()}, "Custom"),
                                       ([torch.ones(1)], "not a state_dict"),
                                       ({"w": torch.ones(1), "step": 5}, "'step'"),
                                       ({"model": {"w": torch.ones(1), "cfg": "x"}}, "'cfg'")])
def test_pth_rejects_non_state_dicts(tmp_path, obj, says):
    path = tmp_path / "bad.pth"
    torch.save(obj, path)
    with pytest.raises(WeightFileError) as e:
        load_weights(path)
    assert_one_line(e, str(path), says)


def test_pth_never_runs_pickled_code(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))
    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"w": Boom()}, protocol=2))
    with pytest.raises(WeightFileError):
        load_weights(tmp_path / "evil.pth")
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("suffix", ["pth", "safetensors"])
def test_corrupt_binary_files(tmp_path, suffix):
    path = write(tmp_path / f"x.{suffix}", b"\x10\0\0\0\0\0\0\0{\"a\": 1}garbage" * 3)
    with pytest.raises(WeightFileError) as e:
        load_weights(path)
    assert_one_line(e, str(path))


# --- bad .wts files ---------------------------------------------------------------------------------

ONE = hexf(1.0)
BAD_WTS = {
    "empty": ("", ["empty"]),
    "blank": (" \n\n", ["empty"]),
    "header not int": ("two\nw 1 0\n", ["line 1", "'two'"]),
    "header negative": ("-1\n", ["line 1"]),
    "header float": ("1.0\nw 1 0\n", ["line 1"]),
    "missing tensor lines": (f"3\nw 1 {ONE}\nb 1 {ONE}\n", ["line 4", "2 of the 3"]),
    "too few values": (f"1\nw 3 {ONE} {ONE}\n", ["line 2", "'w'", "2 values, expected 3"]),
    "truncated mid token": (f"2\nw 2 {ONE} {ONE}\nb 4 {ONE} {ONE} 3f8", ["line 3", "'b'", "3 values"]),
    "too many values": (f"1\nw 1 {ONE} {ONE}\n", ["line 2", "'w'", "2 values, expected 1"]),
    "values on zero count": (f"1\nw 0 {ONE}\n", ["line 2", "'w'"]),
    "non-hex token": (f"2\nw 1 {ONE}\nb 3 {ONE} 3f8z0000 {ONE}\n", ["line 3", "'b'", "value 2", "'3f8z0000'"]),
    "float literal": ("1\nw 2 1.0 2.0\n", ["line 2", "'w'", "value 1", "'1.0'"]),
    "nine digits": (f"1\nw 2 {ONE} 13f800000\n", ["line 2", "'w'", "value 2", "'13f800000'"]),
    "negative count": (f"1\nw -1 {ONE}\n", ["line 2", "'w'", "'-1'"]),
    "non-integer count": (f"1\nw 1.5 {ONE}\n", ["line 2", "'w'", "'1.5'"]),
    "no count": ("1\nweight\n", ["line 2", "'weight'"]),
    "blank tensor line": (f"2\n\nw 1 {ONE}\n", ["line 2"]),
    "duplicate": (f"3\nw 1 {ONE}\nb 1 {ONE}\nw 1 {ONE}\n", ["line 4", "'w'", "line 2"]),
    "trailing garbage": (f"1\nw 1 {ONE}\nb 1 {ONE}\n", ["line 3", "'b 1"]),
    "trailing after blank": (f"1\nw 1 {ONE}\n\n\nx\n", ["line 5", "'x'"]),
    "count over line": (f"1\nw 1000000000000 {ONE}\n", ["line 2", "'w'", "1000000000000", "at most 4"]),
    "header over file": (f"1000000000000\nw 1 {ONE}\n", ["line 1", "1000000000000", "room"]),
}


@pytest.mark.parametrize("case", BAD_WTS)
def test_bad_wts(tmp_path, case):
    text, parts = BAD_WTS[case]
    path = write(tmp_path / "bad.wts", text)
    with pytest.raises(WeightFileError) as e:
        load_weights(path)
    assert_one_line(e, str(path), *parts)


@pytest.mark.parametrize("case", BAD_WTS)
def test_bad_wts_read_in_tiny_blocks(tmp_path, monkeypatch, case):
    """Lines longer than the read buffer give the same errors as lines within it."""
    path = write(tmp_path / "bad.wts", BAD_WTS[case][0])
    with pytest.raises(WeightFileError) as whole:
        load_weights(path)
    monkeypatch.setattr(W, "_BLOCK", 3)
    with pytest.raises(WeightFileError) as tiny:
        load_weights(path)
    assert str(tiny.value) == str(whole.value)


def test_wts_read_in_tiny_blocks(tmp_path, sd, monkeypatch):
    save_wts(sd, tmp_path / "m.wts")
    monkeypatch.setattr(W, "_BLOCK", 5)
    w = load_weights(tmp_path / "m.wts")
    for name, a in sd.items():
        np.testing.assert_array_equal(w[name], a.reshape(-1).astype(np.float32))


@pytest.mark.parametrize("text", ["1000000000\nw 1 0\n", "1\nw 1000000000 0 0\n",
                                  "1\nw 999999999999999999 0\n", "999999999999999999\n"])
def test_huge_counts_fail_without_allocating(tmp_path, text):
    path = write(tmp_path / "huge.wts", text)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(WeightFileError):
            load_weights(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20 and time.perf_counter() - start < 1


# --- load_weights dispatch --------------------------------------------------------------------------

def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(WeightFileError) as e:
        load_weights(write(tmp_path / "m.onnx", "x"))
    assert_one_line(e, "m.onnx", ".wts", ".pth", ".pt", ".safetensors")
    with pytest.raises(WeightFileError) as e:
        load_weights(tmp_path / "nope.wts")
    assert_one_line(e, "nope.wts")


# --- WeightMap --------------------------------------------------------------------------------------

def test_views_and_full(sd):
    w = WeightMap(sd, source="m.wts")
    block = w["layer1"]["0"]
    conv = w["layer1.0.conv1"]
    assert conv.prefix == "layer1.0.conv1" and block.prefix == "layer1.0"
    assert conv.full("weight") == "layer1.0.conv1.weight" and w.full("fc.bias") == "fc.bias"
    assert block["conv1.weight"] is conv["weight"] is sd["layer1.0.conv1.weight"]
    assert sorted(block) == ["conv1.weight", "conv2.weight"] and len(block) == 2
    assert "conv2" in block and "conv2.weight" in block and "conv3" not in block
    assert w.get("fc.bias") is sd["fc.bias"] and w["fc"].get("missing") is None
    assert repr(conv) == "WeightMap('m.wts', 1 tensors, prefix='layer1.0.conv1')"
    assert repr(w) == f"WeightMap('m.wts', {len(sd)} tensors, prefix='')"


def test_weightmap_normalises_arrays():
    w = WeightMap({"d": np.ones((2, 3)).T, "i": np.arange(3)})
    assert w["d"].dtype == np.float32 and w["d"].flags.c_contiguous and w["d"].shape == (3, 2)
    assert w["i"].dtype == np.arange(3).dtype


def test_missing_weight_message(sd):
    w = WeightMap(sd, source="m.wts")
    with pytest.raises(KeyError) as e:
        w["layer1.0"]["conv9"]
    assert isinstance(e.value, MissingWeightError)
    msg = str(e.value)
    assert msg.startswith("m.wts: no tensor or prefix 'layer1.0.conv9' (closest: ") and "\n" not in msg
    assert "layer1.0.conv1" in msg and "layer1.0.conv2" in msg
    with pytest.raises(MissingWeightError) as e:
        w["zzzz"]
    assert str(e.value) == "m.wts: no tensor or prefix 'zzzz'"


def test_unused(sd):
    w = WeightMap(sd)
    assert w.unused() == [n for n in sd if not n.endswith("num_batches_tracked")]
    w["conv1.weight"]
    w["layer1"]["0"]["conv1"]["weight"]
    w["fc"].get("bias")
    "bn1.weight" in w  # testing membership is not a use
    w.get("nothing")
    expected = ["bn1.weight", "bn1.running_var", "layer1.0.conv2.weight", "fc.weight"]
    assert w.unused() == expected
    assert w["layer1"].unused() == ["layer1.0.conv2.weight"]


# --- hostile safetensors ----------------------------------------------------------------------------

def st_bytes(header, data=b"", length=None):
    """A safetensors file from a header (dict, str or raw bytes) and its data, optionally lying about length."""
    import json
    raw = header if isinstance(header, bytes) else (header if isinstance(header, str) else json.dumps(header)).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


HUGE = 2 ** 64
BAD_SAFETENSORS = {
    "short file": (b"\x10\0\0", ["header length"]),
    "header not object": (st_bytes("[1, 2]"), ["JSON object"]),
    "header not json": (st_bytes("{'a': 1}"), ["JSON"]),
    "deeply nested": (st_bytes("[" * 100000 + "]" * 100000), ["JSON"]),
    "header over file": (st_bytes({"a": entry()}, b"\0" * 8, length=1 << 40), ["header length"]),
    "entry not object": (st_bytes({"a": [1]}), ["'a'"]),
    "missing dtype": (st_bytes({"a": {"shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), ["'a'", "dtype"]),
    "overlap": (st_bytes({"a": entry(), "b": entry(offsets=(4, 12))}, b"\0" * 12), ["'b'", "overlaps 'a'"]),
    "gap": (st_bytes({"a": entry(), "b": entry(offsets=(12, 20))}, b"\0" * 20), ["'b'", "gap"]),
    "out of file": (st_bytes({"a": entry(shape=(1 << 38,), offsets=(0, 1 << 40))}, b"\0" * 8), ["'a'", "past"]),
    "reversed": (st_bytes({"a": entry(offsets=(8, 0))}, b"\0" * 8), ["'a'", "reversed"]),
    "offsets not ints": (st_bytes({"a": entry(offsets=(0, 8.0))}, b"\0" * 8), ["'a'", "data_offsets"]),
    "bytes disagree": (st_bytes({"a": entry(shape=(3,))}, b"\0" * 8), ["'a'", "12 bytes", "8"]),
    "product overflow": (st_bytes({"a": entry(shape=(2 ** 40, 2 ** 40), offsets=(0, 0))}), ["'a'", "shape"]),
    "zero next to huge": (st_bytes({"a": entry(shape=(0, HUGE), offsets=(0, 0))}), ["'a'", "shape"]),
    "zero next to int64 max": (st_bytes({"a": entry(shape=(0, 2 ** 63 - 1), offsets=(0, 0))}), ["'a'", "shape"]),
    "negative dim": (st_bytes({"a": entry(shape=(-1,), offsets=(0, 0))}), ["'a'", "shape"]),
    "bool dim": (st_bytes({"a": entry(shape=(True,), offsets=(0, 4))}, b"\0" * 4), ["'a'", "shape"]),
    "65 dims": (st_bytes({"a": entry(shape=(1,) * 65, offsets=(0, 4))}, b"\0" * 4), ["'a'", "65 dimensions"]),
    "dtype F4": (st_bytes({"a": entry(dtype="F4", offsets=(0, 1))}, b"\0"), ["'a'", "'F4'"]),
    "unknown dtype": (st_bytes({"a": entry(dtype="Q7")}, b"\0" * 8), ["'a'", "'Q7'"]),
    "dtype not str": (st_bytes({"a": entry(dtype=["F32"])}, b"\0" * 8), ["'a'", "dtype"]),
    "duplicate key": (st_bytes('{"a": %s, "a": %s}' % ((json_entry := '{"dtype": "F32", "shape": [1], '
                                                         '"data_offsets": [0, 4]}'), json_entry), b"\0" * 4),
                      ["'a'", "twice"]),
    "non-utf8 header": (st_bytes(b'{"\xff": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', b"\0" * 4),
                        ["UTF-8"]),
    "metadata not object": (st_bytes({"__metadata__": [1]}), ["__metadata__"]),
    "data after tensors": (st_bytes({"a": entry()}, b"\0" * 9), ["1 byte", "after"]),
}


@pytest.mark.parametrize("case", BAD_SAFETENSORS)
def test_bad_safetensors(tmp_path, case):
    raw, parts = BAD_SAFETENSORS[case]
    path = write(tmp_path / "bad.safetensors", raw)
    start = time.perf_counter()
    with pytest.raises(WeightFileError) as e:
        load_weights(path)
    assert_one_line(e, str(path), *parts)
    assert time.perf_counter() - start < 1


def test_safetensors_million_entries_bounded(tmp_path):
    header = "{" + ",".join(f'"t{i}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}' for i in range(10 ** 6)) + "}"
    path = write(tmp_path / "many.safetensors", st_bytes(header))
    start = time.perf_counter()
    with pytest.raises(WeightFileError) as e:
        load_weights(path)
    assert time.perf_counter() - start < 2
    assert_one_line(e, str(path), "header")


def test_safetensors_reads_every_dtype(tmp_path):
    from safetensors.torch import save_file
    t = {"f64": torch.tensor([1.5, -2.0], dtype=torch.float64), "i64": torch.tensor([2 ** 40, -3]),
         "i8": torch.tensor([-128, 127], dtype=torch.int8), "u8": torch.tensor([0, 255], dtype=torch.uint8),
         "bool": torch.tensor([True, False]), "i16": torch.tensor([-7, 7], dtype=torch.int16),
         "e4m3": torch.tensor([0.5, -2.0]).to(torch.float8_e4m3fn), "empty": torch.zeros(0, 3)}
    save_file(t, tmp_path / "d.safetensors", metadata={"format": "pt"})
    w = load_weights(tmp_path / "d.safetensors")
    assert w["f64"].dtype == w["e4m3"].dtype == w["empty"].dtype == np.float32 and w["empty"].shape == (0, 3)
    for name, v in t.items():
        expected = v.float().numpy() if v.is_floating_point() else v.numpy()
        assert w[name].dtype == expected.dtype and w[name].shape == expected.shape
        np.testing.assert_array_equal(w[name], expected)


def test_safetensors_owns_its_memory(tmp_path):
    """Rewriting or truncating the file after loading changes nothing loaded (and cannot fault)."""
    save_safetensors({"a": np.arange(4096, dtype=np.float32)}, tmp_path / "m.safetensors")
    w = load_weights(tmp_path / "m.safetensors")
    with open(tmp_path / "m.safetensors", "r+b") as f:
        f.seek(-4096, 2)
        f.write(b"\xff" * 4096)
        f.truncate(16)
    np.testing.assert_array_equal(w["a"], np.arange(4096, dtype=np.float32))
    assert w["a"].flags.owndata or w["a"].base is not None and not isinstance(w["a"].base, memoryview)


# --- hostile .pth -----------------------------------------------------------------------------------

def test_pth_zip_bomb_refused_before_inflating(tmp_path):
    """A deflated record declaring 1 GiB (1 MB on disk) is refused from the zip directory alone."""
    import zipfile
    torch.save({"a": torch.ones(4)}, tmp_path / "ok.pth")
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(tmp_path / "ok.pth") as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, True, 9) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        with dst.open("ok/extra", "w", force_zip64=True) as f:
            block = bytes(1 << 24)
            for _ in range(64):
                f.write(block)
    assert bomb.stat().st_size < 2 << 20
    start = time.perf_counter()
    with pytest.raises(WeightFileError) as e:
        load_weights(bomb)
    assert time.perf_counter() - start < 0.5
    assert_one_line(e, str(bomb), "ok/extra", "1073741824")


@pytest.mark.parametrize("key", [b"a", 1, None, (1, 2), 1.5])
def test_pth_non_string_keys(tmp_path, key):
    path = tmp_path / "k.pth"
    torch.save({"w": torch.ones(1), key: torch.ones(1)}, path)
    with pytest.raises(WeightFileError) as e:
        load_weights(path)
    assert_one_line(e, str(path), repr(key), "not a string")


def test_pth_non_tensor_values(tmp_path):
    path = tmp_path / "v.pth"
    torch.save({"w": torch.ones(1), "nested": [torch.ones(1)]}, path)
    with pytest.raises(WeightFileError) as e:
        load_weights(path)
    assert_one_line(e, str(path), "'nested'", "list")


def quantized():
    return torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.qint8)


@pytest.mark.parametrize("make, says", [
    (lambda: torch.ones(2, dtype=torch.complex64), "complex"),
    (lambda: torch.ones(2, dtype=torch.complex32), "complex"),
    (lambda: torch.ones(2, dtype=torch.complex128), "complex"),
    (quantized, "quantized"),
    (lambda: torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.quint8), "quantized"),
    (lambda: torch.ones(2, device="meta"), "meta"),
    (lambda: torch.ones(2, 2).to_sparse(), "sparse"),
    (lambda: torch.ones(2, 2).to_sparse_csr(), "sparse"),
    (lambda: torch.tensor([1e300], dtype=torch.float64), "float32"),
])
def test_pth_unsupported_tensors(tmp_path, make, says):
    path = tmp_path / "t.pth"
    torch.save({"ok": torch.ones(1), "bad": make()}, path)
    with pytest.raises(WeightFileError) as e:
        load_weights(path)
    assert_one_line(e, str(path), "'bad'", says)


def test_pth_views_sharing_storage_load(tmp_path):
    base = torch.arange(10, dtype=torch.float32)
    torch.save({"a": base[:4], "b": base[4:].view(2, 3), "tied": base, "t": base[:6].view(2, 3).t()},
               tmp_path / "v.pth")
    w = load_weights(tmp_path / "v.pth")
    np.testing.assert_array_equal(w["b"], [[4, 5, 6], [7, 8, 9]])
    np.testing.assert_array_equal(w["t"], [[0, 3], [1, 4], [2, 5]])
    assert w["a"].tolist() == [0, 1, 2, 3] and w["tied"].size == 10


@pytest.mark.parametrize("state", [lambda: {"e": torch.ones(1).expand(2 ** 28)},
                                   lambda: dict.fromkeys((f"k{i}" for i in range(4096)), torch.ones(1 << 16))])
def test_pth_views_larger_than_the_file_refused(tmp_path, state):
    """A 1.6 KB file holding a stride-0 view of 1 GiB, or one storage under thousands of names."""
    path = tmp_path / "x.pth"
    torch.save(state(), path)
    start = time.perf_counter()
    with pytest.raises(WeightFileError) as e:
        load_weights(path)
    assert time.perf_counter() - start < 2
    assert_one_line(e, str(path), "bytes")


def test_pth_legacy_format_refused(tmp_path):
    path = tmp_path / "old.pth"
    torch.save({"a": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(WeightFileError) as e:
        load_weights(path)
    assert_one_line(e, str(path), "torch.save")


# --- values -----------------------------------------------------------------------------------------

def test_integer_buffers_keep_values(tmp_path):
    sd = {"bn.num_batches_tracked": torch.tensor(123456789012), "pos_ids": torch.arange(5).unsqueeze(0),
          "mask": torch.tensor([True, False]), "u16": torch.tensor([65535], dtype=torch.uint16)}
    torch.save(sd, tmp_path / "i.pth")
    save_safetensors(sd, tmp_path / "i.safetensors")
    for suffix in ("pth", "safetensors"):
        w = load_weights(tmp_path / f"i.{suffix}")
        for name, t in sd.items():
            assert w[name].dtype == t.numpy().dtype
            np.testing.assert_array_equal(w[name], t.numpy())


def test_float64_out_of_float32_range(tmp_path):
    save_path = tmp_path / "r.safetensors"
    from safetensors.numpy import save_file
    save_file({"ok": np.array([1e-300, 3e38]), "big": np.array([1.0, -1e300])}, save_path)
    with pytest.raises(WeightFileError) as e:
        load_weights(save_path)
    assert_one_line(e, str(save_path), "'big'", "float32")
    with pytest.raises(ValueError):
        WeightMap({"big": np.array([1e39])})


def test_complex_refused_everywhere(tmp_path):
    with pytest.raises(ValueError, match="complex"):
        WeightMap({"c": np.array([1 + 2j])})
    from safetensors.torch import save_file
    save_file({"c": torch.ones(2, dtype=torch.complex64)}, tmp_path / "c.safetensors")
    with pytest.raises(WeightFileError) as e:
        load_weights(tmp_path / "c.safetensors")
    assert_one_line(e, str(tmp_path / "c.safetensors"), "'c'", "C64")


def test_nonfinite_named(tmp_path):
    sd = {"a.w": np.array([1.0, np.nan], np.float32), "a.b": np.ones(2, np.float32),
          "c.w": np.array([-np.inf], np.float32), "n": np.arange(3)}
    save_wts(sd, tmp_path / "n.wts")
    w = load_weights(tmp_path / "n.wts")
    assert w.nonfinite() == ["a.w", "c.w"] and w["a"].nonfinite() == ["a.w"]
    assert np.isnan(w["a.w"][1])


# --- memory and time --------------------------------------------------------------------------------

def test_prefix_index_is_linear():
    """Names of 40000 dots: the prefix index and the missing-name hint stay linear in the names' length."""
    def use():
        w = WeightMap({"a." * 40000 + "w": np.ones(1, np.float32), "a." * 39999 + "b": np.ones(1, np.float32)})
        assert "a." * 20000 + "a" in w and "a." * 39999 + "a" in w and "a." * 39999 + "c" not in w
        assert list(w["a." * 39999 + "a"]) == ["w"]
        return w
    start = time.perf_counter()
    with pytest.raises(MissingWeightError):
        use()["a." * 39999 + "x"]
    assert time.perf_counter() - start < 1
    tracemalloc.start()
    try:
        use()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_wts_unpadded_memory_is_proportional(tmp_path):
    n = 1 << 21
    path = write(tmp_path / "u.wts", f"1\nt {n} " + " ".join(["0"] * n) + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        w = load_weights(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert w["t"].shape == (n,) and not w["t"].any()
    assert peak < 4 * size + (32 << 20), peak / size


def test_wts_survives_truncation_while_loaded(tmp_path):
    """The loaded arrays are independent of the file: truncating it afterwards is harmless."""
    a = np.arange(1000, dtype=np.float32)
    save_wts({"a": a}, tmp_path / "m.wts")
    w = load_weights(tmp_path / "m.wts")
    os.truncate(tmp_path / "m.wts", 0)
    np.testing.assert_array_equal(w["a"], a)
