"""Sequence models whose length is dynamic.

audio_cnn: a raw-waveform classifier in the manner of M5 (Dai et al., 2017): a wide strided first convolution as a
learned filter bank, then Conv1d/BatchNorm1d/ReLU/MaxPool1d stages, global average pooling over time, a linear head.

crnn: a text-line recogniser in the manner of CRNN (Shi et al., 2015): convolutions bring a 32-pixel-high line image
to height 1, its columns become a time sequence (T, N, C) for a 2-layer bidirectional LSTM, and a linear layer gives
per-step log-probabilities over the characters and a CTC blank.
"""
from trtnet import Graph, bn, conv, fc, flatten, global_avg_pool, log_softmax, lstm, max_pool, permute, relu, squeeze
from trtnet.zoo import register
from zoo import blocks

# (out channels, kernel, stride) per stage; each stage ends in a 4x max pool.
AUDIO_STAGES = ((32, 80, 4), (32, 3, 1), (64, 3, 1), (64, 3, 1))
AUDIO_CLASSES = 35
# 2000 samples is the shortest input that leaves one step after the last pool; 16000 is 2 s at 8 kHz.
AUDIO_LENGTH = (2000, 8000, 16000)


@register("audio_cnn", (1, "L"), blocks.deferred("zoo.torch_refs", "AudioCNN"), test_shape=(1, 4000),
          doc=f"1D CNN on raw waveforms (1, L), L in {AUDIO_LENGTH[0]}..{AUDIO_LENGTH[2]}, {AUDIO_CLASSES} classes")
def audio_cnn(w, shape):
    g = Graph("audio_cnn")
    x = g.input("audio", ("N", *shape), ranges={"L": AUDIO_LENGTH} if "L" in shape else None)
    for i, (out, kernel, stride) in enumerate(AUDIO_STAGES):
        s = w[f"stages.{i}"]
        x = max_pool(relu(bn(conv(x, s["conv"], out, kernel, stride), s["bn"])), 4)
    x = flatten(global_avg_pool(x, name="pool"), 1)
    g.output(fc(x, w["fc"], AUDIO_CLASSES), "logits")
    return g


# (out channels, kernel, padding, pool kernel after it or None): height 32 -> 16 -> 8 -> 4 -> 2 -> 1
CRNN_CONVS = ((16, 3, 1, (2, 2)), (32, 3, 1, (2, 2)), (64, 3, 1, (2, 1)), (64, 3, 1, (2, 1)), (64, 2, 0, None))
CRNN_HIDDEN = 48
CRNN_CLASSES = 37          # 26 letters, 10 digits and the CTC blank
CRNN_WIDTH = (32, 128, 256)


@register("crnn", (1, 32, "W"), blocks.deferred("zoo.torch_refs", "CRNN"), test_shape=(1, 32, 64),
          doc=f"CRNN text-line recogniser: 1x32xW images, W in {CRNN_WIDTH[0]}..{CRNN_WIDTH[2]}; (T, N, "
              f"{CRNN_CLASSES}) log-probabilities, T = W // 4 - 1")
def crnn(w, shape):
    g = Graph("crnn")
    x = g.input("images", ("N", *shape), ranges={"W": CRNN_WIDTH} if "W" in shape else None)
    for i, (out, kernel, padding, pool) in enumerate(CRNN_CONVS):
        s = w[f"convs.{i}"]
        x = relu(bn(conv(x, s["conv"], out, kernel, padding=padding), s["bn"]))
        x = x if pool is None else max_pool(x, pool)
    x = permute(squeeze(x, 2), (2, 0, 1))                 # (T, N, C)
    x, _ = lstm(x, w["rnn"], CRNN_HIDDEN, num_layers=2, bidirectional=True)
    g.output(log_softmax(fc(x, w["fc"], CRNN_CLASSES), dim=2), "log_probs")
    return g
