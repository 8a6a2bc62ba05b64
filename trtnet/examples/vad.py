"""Voice activity detection end to end: `python -m trtnet.examples.vad WAV` prints speech segments.

A 16 kHz mono WAV (16-bit PCM) is cut into 512-sample chunks (the last zero-padded) and the zoo's silero_vad_seq
network (the LSTM runs as a loop inside it) gives one speech probability per chunk. Segments follow
silero-vad's `get_speech_timestamps` with its defaults and no limit on a segment's length: speech starts at a
chunk at or over the threshold, ends after at least 100 ms under threshold - 0.15, is kept when longer than
250 ms, and is padded by 30 ms on each side (half the gap where neighbours are closer than 60 ms).

`--int8` (or `--fp8`) quantizes the convolutions (the STFT and the encoder's four, the head's 1x1), calibrated on
sentences espeak-ng synthesizes (or `--calib` WAV files); the LSTM, a loop in the network, stays in fp32. INT8
also keeps conv1, whose input, the STFT magnitude, spans more than per-tensor INT8 holds: on the tested clip,
quantized it moves a chunk's probability by up to 0.41, kept by up to 0.15; the segments are fp32's either way.
FP8 (all six quantized) moves a probability by up to 0.07 and a segment's end by one chunk (32 ms).
"""
import argparse
import shutil
import subprocess
import tempfile
import wave

import numpy as np

from .. import cli
from . import Runner

RATE, CHUNK = 16000, 512
KEEP = {"int8": ("conv1",), "fp8": ()}
# calibration sentences: none of them the ones the example is shown or tested on
SENTENCES = (("en", 130, "The quick brown fox jumps over the lazy dog."),
             ("en-us", 150, "Numbers such as seven hundred and twelve are read aloud slowly."),
             ("en-gb", 170, "A quiet room, then a short question: where are you going?"))


def read_wav(path, resample=False):
    """Mono float32 samples in [-1, 1) of a 16 kHz 16-bit PCM WAV file (`resample`: of any rate, linearly)."""
    with wave.open(str(path)) as f:
        if (f.getframerate() != RATE and not resample) or f.getsampwidth() != 2 or f.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit PCM, got {f.getframerate()} Hz, "
                             f"{f.getnchannels()} channel(s), {8 * f.getsampwidth()}-bit")
        rate, raw = f.getframerate(), np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32) / 32768
    return np.interp(np.arange(0, len(raw), rate / RATE), np.arange(len(raw)), raw).astype(np.float32)


def synthesize(text, voice="en", speed=150):
    """16 kHz samples of `text` spoken by espeak-ng."""
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", path, text], check=True,
                       capture_output=True)
        return read_wav(path, resample=True)


def calibration_chunks(clips, t=64, seed=1):
    """(K, t, 512) chunks of the clips with half a second of silence around each and faint noise: a
    quantized network's calibration data."""
    quiet = np.zeros(RATE // 2, np.float32)
    audio = np.concatenate([x for c in clips for x in (quiet, c)] + [quiet])
    audio = audio + 0.005 * np.random.default_rng(seed).standard_normal(len(audio)).astype(np.float32)
    c = chunks(audio)[0]
    t = min(t, len(c))
    return c[:len(c) // t * t].reshape(-1, t, CHUNK)


def quantized(precision, clips, keep=None):
    """silero_vad_seq's graph -> quantized graph, calibrated on `clips` (16 kHz samples); `keep` defaults to
    the precision's KEEP."""
    from ..quantize import quantize
    data, keep = calibration_chunks(clips), KEEP[precision] if keep is None else keep
    return lambda g: quantize(g, data, precision, keep=keep, samples=len(data), progress=False)


def chunks(audio):
    """(1, T, 512) chunks, the last one zero-padded."""
    t = max(1, -(-len(audio) // CHUNK))
    return np.pad(audio, (0, t * CHUNK - len(audio)))[None].reshape(1, t, CHUNK)


def speech_probs(runner, audio):
    return runner(audio=chunks(audio))["probs"][0]


def segments(probs, length, threshold=0.5, min_speech_ms=250, min_silence_ms=100, pad_ms=30):
    """[(start, end)] in samples from per-chunk probabilities; `length` is the clip's length in samples."""
    min_speech, min_silence, pad = (RATE * ms / 1000 for ms in (min_speech_ms, min_silence_ms, pad_ms))
    low = max(threshold - 0.15, 0.01)
    found, start, silent_from = [], None, 0
    for i, p in enumerate(probs):
        at = CHUNK * i
        if p >= threshold:
            silent_from = 0
            start = at if start is None else start
        elif p < low and start is not None:
            silent_from = silent_from or at
            if at - silent_from >= min_silence:
                if silent_from - start > min_speech:
                    found.append([start, silent_from])
                start, silent_from = None, 0
    if start is not None and length - start > min_speech:
        found.append([start, length])
    return padded(found, length, pad)


def padded(found, length, pad):
    """Segments widened by `pad` samples, splitting gaps shorter than 2 * pad between neighbours."""
    for i, seg in enumerate(found):
        if i == 0:
            seg[0] = int(max(0, seg[0] - pad))
        if i + 1 < len(found):
            gap = found[i + 1][0] - seg[1]
            step = gap // 2 if gap < 2 * pad else pad
            seg[1] = int(seg[1] + step) if gap < 2 * pad else int(min(length, seg[1] + pad))
            found[i + 1][0] = int(max(0, found[i + 1][0] - step))
        else:
            seg[1] = int(min(length, seg[1] + pad))
    return [tuple(s) for s in found]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m trtnet.examples.vad", description=__doc__.split("\n")[0])
    p.add_argument("wav", help="16 kHz mono 16-bit PCM WAV file")
    p.add_argument("--threshold", type=float, default=0.5, help="speech probability that starts a segment")
    modes = p.add_mutually_exclusive_group()
    for mode in ("int8", "fp8"):
        modes.add_argument(f"--{mode}", dest="precision", action="store_const", const=mode,
                           help=f"{mode.upper()} convolutions, calibrated on speech espeak-ng synthesizes")
    p.add_argument("--calib", nargs="+", metavar="WAV", help="calibrate on these mono 16-bit WAV files instead")
    p.add_argument("-v", "--verbose", action="store_true", help="a traceback with any error")
    a = p.parse_args(argv)
    return cli.run_command(a, lambda: run(a), cli.Timeline(show=False))


def run(a):
    """Find and print the segments (an engine's profile-range error becomes the command's one error line)."""
    if a.calib and not a.precision:
        raise cli.UsageError("--calib needs a quantization mode: --int8 or --fp8")
    try:
        audio = read_wav(a.wav)
    except (OSError, EOFError, wave.Error, ValueError) as e:
        raise cli.UsageError(f"{a.wav}: {e}") from None
    runner = Runner("silero_vad_seq", transform=quantized(a.precision, calibration(a)) if a.precision else None)
    print(f"network run by: {runner.backend}" + (f", {a.precision}" if a.precision else ""))
    probs = speech_probs(runner, audio)
    found = segments(probs, len(audio), a.threshold)
    print(f"{len(found)} speech segment{'s' * (len(found) != 1)} in {a.wav} ({len(audio) / RATE:.2f} s, "
          f"{len(probs)} chunks)")
    for start, end in found:
        print(f"  {start / RATE:7.3f} s - {end / RATE:7.3f} s  (samples {start}-{end})")
    return 0


def calibration(a):
    """The calibration clips: --calib's files, else the synthesized sentences."""
    if a.calib:
        try:
            return [read_wav(f, resample=True) for f in a.calib]
        except (OSError, EOFError, wave.Error, ValueError) as e:
            raise cli.UsageError(f"--calib: {e}") from None
    try:
        return [synthesize(text, voice, speed) for voice, speed, text in SENTENCES]
    except FileNotFoundError as e:
        raise cli.UsageError(f"--{a.precision} calibrates on synthesized speech, but {e}: "
                             "install it or give --calib WAV") from None


if __name__ == "__main__":
    cli.exit_now(main())
