"""Silero VAD with the package's trained weights: the streaming step and the whole-clip network against the
package's TorchScript model run chunk by chunk, on speech synthesized by espeak-ng mixed with silence and noise."""
import importlib
import shutil
import subprocess

import numpy as np
import pytest

silero_vad = pytest.importorskip("silero_vad")
import torch  # noqa: E402

from trtnet import harness, zoo  # noqa: E402
from trtnet.check.report import check_graph  # noqa: E402
from trtnet.weights import WeightMap  # noqa: E402

zoo_vad = importlib.import_module("zoo.vad")
from trtnet.examples import vad  # noqa: E402

TEXT = "Voice activity detection finds the parts of a recording where somebody speaks."


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Silence, a sentence, a pause, the sentence's start, silence; with faint noise throughout (16 kHz)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): no speech to test with")
    path = tmp_path_factory.mktemp("vad") / "speech.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), TEXT], check=True, capture_output=True)
    import wave
    with wave.open(str(path)) as f:
        rate, raw = f.getframerate(), np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32) / 32768
    speech = np.interp(np.arange(0, len(raw), rate / vad.RATE), np.arange(len(raw)), raw).astype(np.float32)
    silence = lambda s: np.zeros(int(s * vad.RATE), np.float32)
    audio = np.concatenate([silence(0.7), speech, silence(1.2), speech[:vad.RATE], silence(0.5), silence(0.013)])
    return (audio + 0.005 * np.random.default_rng(0).standard_normal(len(audio))).astype(np.float32)


def reference_probs(audio):
    model = silero_vad.load_silero_vad()
    model.reset_states()
    chunks = torch.from_numpy(vad.chunks(audio)[0])
    return np.array([model(c, vad.RATE).item() for c in chunks])


def test_weights_are_the_torchscript_models():
    w = WeightMap(harness.export_state("silero_vad"))
    jit = torch.jit.load(zoo_vad.package_file("silero_vad.jit"))
    assert np.array_equal(w["lstm_cell.weight_hh"], jit._model.decoder.rnn.weight_hh.detach().numpy())
    assert set(zoo_vad.silero_weights("safetensors")) == set(w), "the safetensors file's names"


def test_streaming_step_matches_torchscript(clip):
    graph = zoo.get("silero_vad").graph(WeightMap(harness.export_state("silero_vad")))
    model = silero_vad.load_silero_vad()
    chunks = vad.chunks(clip)[0][:40]
    state, context = np.zeros((2, 1, 128), np.float32), np.zeros((1, 64), np.float32)
    for i, c in enumerate(chunks):
        x = np.concatenate([context, c[None]], 1)
        with torch.no_grad():
            want, want_state = model._model(torch.from_numpy(x), torch.from_numpy(state))
        if i % 8 == 0:
            report = check_graph(graph, {"x": x, "state": state}, {"prob": want.numpy(), "new_state": want_state.numpy()})
            assert report.ok, report.summary()
        state, context = want_state.numpy(), x[:, -64:]


def test_clip_probabilities_and_segments_match_silero(clip):
    runner = vad.Runner("silero_vad_seq")
    probs = vad.speech_probs(runner, clip)
    want = reference_probs(clip)
    assert probs.shape == want.shape
    assert np.abs(probs - want).max() < 1e-4
    assert want.max() > 0.9 and want.min() < 0.1, "the clip has speech and silence"
    found = vad.segments(probs, len(clip))
    expected = silero_vad.get_speech_timestamps(torch.from_numpy(clip), silero_vad.load_silero_vad())
    assert found == [(s["start"], s["end"]) for s in expected]
    assert len(found) >= 2


def write_wav(path, audio):
    import wave
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(vad.RATE)
        f.writeframes((np.clip(audio, -1, 1 - 2 ** -15) * 32768).astype("<i2").tobytes())


def test_command_line(clip, tmp_path, capsys):
    path = tmp_path / "clip.wav"
    write_wav(path, clip)
    vad.main([str(path)])
    out = capsys.readouterr().out
    assert "speech segment" in out and " s - " in out


@pytest.fixture(scope="module")
def calibration_clips(clip):
    assert all(TEXT not in text for _, _, text in vad.SENTENCES), "calibration held apart from the tested speech"
    return [vad.synthesize(text, voice, speed) for voice, speed, text in vad.SENTENCES]


@pytest.mark.parametrize("precision,shift,moved", [("int8", 0, 0.3), ("fp8", vad.CHUNK, 0.15)])
def test_quantized_segments_match_silero(clip, calibration_clips, precision, shift, moved):
    """The TensorRT network with quantized convolutions (1-D, run as 2-D) against silero-vad's own model:
    INT8 finds the very segments, FP8 within one chunk; no chunk's probability moves by more than `moved`."""
    runner = vad.Runner("silero_vad_seq", transform=vad.quantized(precision, calibration_clips))
    quant = runner.graph.quant
    assert quant["layers"] == [k for k in ("stft_conv", "conv1", "conv2", "conv3", "conv4", "final_conv")
                               if k not in vad.KEEP[precision]]
    probs = vad.speech_probs(runner, clip)
    assert np.abs(probs - reference_probs(clip)).max() < moved
    found = vad.segments(probs, len(clip))
    expected = silero_vad.get_speech_timestamps(torch.from_numpy(clip), silero_vad.load_silero_vad())
    assert len(found) == len(expected) >= 2
    assert np.abs(np.array(found) - [(s["start"], s["end"]) for s in expected]).max() <= shift


def test_command_line_int8(clip, tmp_path, capsys):
    path = tmp_path / "clip.wav"
    write_wav(path, clip)
    vad.main([str(path)])
    fp32 = capsys.readouterr().out
    vad.main([str(path), "--int8"])
    int8 = capsys.readouterr().out
    assert "int8" in int8.splitlines()[0]
    assert int8.splitlines()[1:] == fp32.splitlines()[1:] and " s - " in int8
    assert vad.main([str(path), "--calib", str(path)]) == 1
    assert capsys.readouterr().err == "error: --calib needs a quantization mode: --int8 or --fp8\n"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["silero_vad", "silero_vad_seq"])
def test_engine_builds(name):
    from trtnet.engine import build_engine
    graph = zoo.get(name).graph(WeightMap(harness.export_state(name)))
    plan, info = build_engine(graph, progress=False)
    assert len(plan) > 4 * 300_000 and info.layers > 50
