"""Silero VAD (16 kHz) with the trained weights the silero-vad package ships, as two engines.

Per 512-sample chunk, with the previous chunk's last 64 samples in front (576 samples): reflection padding of 64
at the end, an STFT as a strided conv1d (256-sample window, hop 128, 129 real and 129 imaginary filters), the
magnitude, four conv1d + ReLU layers (the time axis 4 -> 4 -> 2 -> 1), an LSTM cell (128) carried across chunks,
then ReLU, a 1x1 conv and a sigmoid: the chunk's speech probability.
- silero_vad: one streaming step, (N, 576) samples and the state (2, N, 128) -> probability (N, 1) and new state;
- silero_vad_seq: a whole clip as (N, T, 512) chunks from a zero state; the context is taken from the previous
  chunk inside the network and the recurrence runs as a TensorRT loop -> probabilities (N, T).
State-dict names are the package's safetensors names (stft_conv, conv1-4, lstm_cell, final_conv); the weights
are the TorchScript model's (see silero_weights).
"""
import importlib.util
import os

from trtnet import Graph, WeightMap, cat, conv, lstm, lstm_cell, pad, relu, sigmoid, sqrt, stack
from trtnet.zoo import register
from zoo import blocks

CHUNK, CONTEXT, HIDDEN = 512, 64, 128
FILTERS = 258                       # 129 real, then 129 imaginary STFT filters
CONVS = ((1, 1), (2, 1), (2, 1), (1, 1))   # (stride, padding) of conv1-4, kernel 3
CLIP = (1, 128, 2048)               # chunks per clip (32 ms each): min, opt, max of the profile


JIT_NAMES = {"stft.forward_basis_buffer": "stft_conv.weight", "decoder.decoder.2": "final_conv",
             "decoder.rnn": "lstm_cell", **{f"encoder.{i}.reparam_conv": f"conv{i + 1}" for i in range(4)}}


def package_file(name):
    spec = importlib.util.find_spec("silero_vad")
    if spec is None:
        raise ImportError("Silero VAD's weights come with silero-vad: pip install silero-vad")
    return os.path.join(os.path.dirname(spec.origin), "data", name)


def silero_weights(source="jit"):
    """{safetensors name: array} of the 16 kHz model: from the TorchScript model `load_silero_vad()` runs
    (source="jit", the default), or the package's `silero_vad_16k.safetensors` (source="safetensors"), which
    holds differently trained weights under the same names (their probabilities differ by up to 0.9 on speech)."""
    if source == "safetensors":
        from safetensors.numpy import load_file
        return load_file(package_file("silero_vad_16k.safetensors"))
    import torch
    state = torch.jit.load(package_file("silero_vad.jit"), map_location="cpu")._model.state_dict()
    out = {}
    for k, v in state.items():
        prefix = next(p for p in JIT_NAMES if k.startswith(p))
        out[JIT_NAMES[prefix] + k[len(prefix):]] = v.numpy()
    return out


def features(x, w):
    """(B, 576) samples -> (B, 128) encoder features."""
    y = conv(pad(x, (0, CONTEXT), mode="reflect").unsqueeze(1), w["stft_conv"], stride=128)
    x = sqrt(y[:, :FILTERS // 2] ** 2 + y[:, FILTERS // 2:] ** 2, name="magnitude")
    for i, (stride, padding) in enumerate(CONVS, 1):
        x = relu(conv(x, w[f"conv{i}"], stride=stride, padding=padding))
    return x.squeeze(-1)


def head(h, w):
    """LSTM outputs (N, 128, L) -> probabilities (N, L): ReLU, 1x1 conv, sigmoid, mean over its single channel."""
    return sigmoid(conv(relu(h), w["final_conv"])).mean(dim=1)


@register("silero_vad", (CHUNK + CONTEXT,), blocks.deferred("zoo.torch_refs", "SileroStep"),
          state=silero_weights,
          doc="Silero VAD streaming step: (N, 576) samples at 16 kHz (a 512-sample chunk after the previous chunk's "
              "last 64) and the LSTM state (2, N, 128) -> speech probability (N, 1) and the new state")
def silero_vad(w, shape):
    g = Graph("silero_vad")
    x = g.input("x", ("N", *shape))
    state = g.input("state", (2, "N", HIDDEN))
    h, c = lstm_cell(features(x, w), (state[0], state[1]), w["lstm_cell"])
    g.output(head(h.unsqueeze(-1), w), "prob")
    g.output(stack([h, c]), "new_state")
    return g


@register("silero_vad_seq", ("T", CHUNK), blocks.deferred("zoo.torch_refs", "SileroClip"),
          state=silero_weights, test_shape=(6, CHUNK),
          doc=f"Silero VAD over a clip: (N, T, 512) chunks at 16 kHz, T in {CLIP[0]}..{CLIP[2]}, from a zero state; "
              "the LSTM runs as a loop inside the network -> speech probability per chunk (N, T)")
def silero_vad_seq(w, shape):
    g = Graph("silero_vad_seq")
    audio = g.input("audio", ("N", *shape), ranges={"T": CLIP} if "T" in shape else None)
    n, t = audio.shape[:2]
    context = pad(audio, (0, 0, 1, 0))[:, :-1, CHUNK - CONTEXT:]          # the previous chunk's tail, zeros first
    x = features(cat([context, audio], 2).reshape(n * t, CHUNK + CONTEXT), w)
    cell = w["lstm_cell"]
    weights = WeightMap({f"{k}_l0": cell[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}, w.source)
    h, _ = lstm(x.reshape(n, t, HIDDEN), weights, HIDDEN, batch_first=True, name="lstm_cell")
    g.output(head(h.permute(0, 2, 1), w), "probs")
    return g
