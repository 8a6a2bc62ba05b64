"""The PyTorch references of the zoo's own models (LeNet, the sequence models, the text encoder, U-Net, Silero
VAD), kept apart from their graphs so that recording and building a model never import torch."""
import torch
import torch.nn.functional as F
from torch import nn

from zoo import audio, digits_resnet, text, unet, vad


# lenet ------------------------------------------------------------------------------------------------------------
class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def logits(self, x):
        x = F.avg_pool2d(F.relu(self.conv1(x)), 2)
        x = F.avg_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    def forward(self, x):
        return F.softmax(self.logits(x), dim=1)


# audio ------------------------------------------------------------------------------------------------------------
class AudioStage(nn.Module):
    def __init__(self, cin, cout, kernel, stride):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride, bias=False)
        self.bn = nn.BatchNorm1d(cout)
        self.pool = nn.MaxPool1d(4)

    def forward(self, x):
        return self.pool(self.bn(self.conv(x)).relu())


class AudioCNN(nn.Module):
    def __init__(self, stages=audio.AUDIO_STAGES, classes=audio.AUDIO_CLASSES):
        super().__init__()
        cins = (1,) + tuple(s[0] for s in stages[:-1])
        self.stages = nn.Sequential(*(AudioStage(cin, *s) for cin, s in zip(cins, stages)))
        self.fc = nn.Linear(stages[-1][0], classes)

    def forward(self, x):
        return self.fc(self.stages(x).mean(dim=2))


class ConvBN(nn.Module):
    def __init__(self, cin, cout, kernel, padding):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x)).relu()


class CRNN(nn.Module):
    def __init__(self, convs=audio.CRNN_CONVS, hidden=audio.CRNN_HIDDEN, classes=audio.CRNN_CLASSES):
        super().__init__()
        cins = (1,) + tuple(c[0] for c in convs[:-1])
        self.convs = nn.ModuleList(ConvBN(cin, cout, k, p) for cin, (cout, k, p, _) in zip(cins, convs))
        self.pools = tuple(c[3] for c in convs)
        self.rnn = nn.LSTM(convs[-1][0], hidden, num_layers=2, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, x):
        for block, pool in zip(self.convs, self.pools):
            x = block(x) if pool is None else F.max_pool2d(block(x), pool)
        x = x.squeeze(2).permute(2, 0, 1)          # (N, C, 1, T) -> (T, N, C)
        return self.fc(self.rnn(x)[0]).log_softmax(dim=2)


# text -------------------------------------------------------------------------------------------------------------
class TextEncoder(nn.Module):
    """The PyTorch reference: ids (N, T) -> logits (N, CLASSES)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(text.VOCAB, text.DIM, padding_idx=text.PAD)
        self.pos = nn.Embedding(text.MAX_LEN, text.DIM)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(text.DIM, text.HEADS, text.FFN, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(text.LAYERS))
        self.norm = nn.LayerNorm(text.DIM)
        self.head = nn.Linear(text.DIM, text.CLASSES)

    def forward(self, ids):
        pad = ids == text.PAD
        x = self.embed(ids) + self.pos(torch.arange(ids.shape[1]))
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        pooled = (self.norm(x) * keep).sum(1) / keep.sum(1)
        return self.head(pooled)


# unet -------------------------------------------------------------------------------------------------------------
class DoubleConv(nn.Module):
    def __init__(self, cin, cout, act):
        super().__init__()
        self.conv1, self.norm1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(unet.GROUPS, cout)
        self.conv2, self.norm2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(unet.GROUPS, cout)
        self.act = act

    def forward(self, x):
        return self.act(self.norm2(self.conv2(self.act(self.norm1(self.conv1(x))))))


class UNet(nn.Module):
    def __init__(self, widths=unet.WIDTHS, up=unet.UP, classes=unet.CLASSES):
        super().__init__()
        self.up_modes = up
        self.down = nn.ModuleList(DoubleConv(cin, cout, F.silu) for cin, cout in zip((3,) + widths[:-1], widths))
        # decoder level i (from the bottom) brings widths[-1 - i] channels to widths[-2 - i]
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(c, c // 2, 2, stride=2) if mode == "transpose" else
                                      nn.Identity() for c, mode in zip(widths[:0:-1], up))
        self.up = nn.ModuleList(DoubleConv(c + c // 2 if mode == "bilinear" else c, c // 2, F.relu)
                                for c, mode in zip(widths[:0:-1], up))
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for upsample, block, mode in zip(self.upsample, self.up, self.up_modes):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) if mode == "bilinear" \
                else upsample(x)
            x = block(torch.cat([x, skips.pop()], dim=1))
        return self.head(x)


# vad --------------------------------------------------------------------------------------------------------------
class SileroStep(nn.Module):
    """The TorchScript model's 16 kHz forward under the safetensors names: (N, 576), state -> (N, 1), state."""

    def __init__(self):
        super().__init__()
        self.stft_conv = nn.Conv1d(1, vad.FILTERS, 256, stride=128, bias=False)
        chans = (vad.FILTERS // 2, 128, 64, 64, 128)
        for i, (stride, padding) in enumerate(vad.CONVS, 1):
            setattr(self, f"conv{i}", nn.Conv1d(chans[i - 1], chans[i], 3, stride, padding))
        self.lstm_cell = nn.LSTMCell(vad.HIDDEN, vad.HIDDEN)
        self.final_conv = nn.Conv1d(vad.HIDDEN, 1, 1)

    def features(self, x):
        y = self.stft_conv(F.pad(x, (0, vad.CONTEXT), mode="reflect").unsqueeze(1))
        x = torch.sqrt(y[:, :vad.FILTERS // 2] ** 2 + y[:, vad.FILTERS // 2:] ** 2)
        for i in range(1, 5):
            x = getattr(self, f"conv{i}")(x).relu()
        return x.squeeze(-1)

    def head(self, h):
        return torch.sigmoid(self.final_conv(h.unsqueeze(-1).relu())).squeeze(1).mean(dim=1).unsqueeze(1)

    def forward(self, x, state):
        h, c = self.lstm_cell(self.features(x), (state[0], state[1]))
        return self.head(h), torch.stack([h, c])


class SileroClip(SileroStep):
    """SileroStep over a clip's chunks (N, T, 512) from zero state and context: probabilities (N, T)."""

    def forward(self, audio):
        n = audio.shape[0]
        state, context, probs = torch.zeros(2, n, vad.HIDDEN), torch.zeros(n, vad.CONTEXT), []
        for t in range(audio.shape[1]):
            x = torch.cat([context, audio[:, t]], 1)
            prob, state = super().forward(x, state)
            probs.append(prob)
            context = x[:, -vad.CONTEXT:]
        return torch.cat(probs, 1)


class Block(nn.Module):
    """The digits ResNet's basic block (torchvision's names: conv1, bn1, conv2, bn2, downsample)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class DigitsResNet(nn.Module):
    def __init__(self):
        super().__init__()
        widths = digits_resnet.WIDTHS
        self.conv1, self.bn1 = nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0])
        for i, (cin, cout) in enumerate(zip((widths[0],) + widths[:-1], widths)):
            setattr(self, f"layer{i + 1}", nn.Sequential(Block(cin, cout, 1 if i == 0 else 2)))
        self.fc = nn.Linear(widths[-1], 10)

    def logits(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def forward(self, x):
        return F.softmax(self.logits(x), dim=1)
