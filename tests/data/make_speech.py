"""Made once, not run by the tests: the spoken sentences in ``tests/data/speech/`` (committed, ~50 KB).

Each line of ``speech/sentences.txt`` (Harvard sentences) spoken by espeak-ng's default English voice,
encoded as Ogg Opus (16 kHz mono, 32 kbit/s) to ``speech/N.ogg``. The tests read these files, so a
machine needs no speech engine (neither Debian's espeak-ng nor a TTS wheel) to test transcription.

To remake them (espeakng-loader ships libespeak-ng 1.52 with its data; this calls its C API, as
declared in espeak-ng's ``speak_lib.h``, through ctypes):

    python3 -m venv /tmp/tts && /tmp/tts/bin/pip install espeakng-loader==0.2.4 av==18.1.0 numpy
    /tmp/tts/bin/python tests/data/make_speech.py
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import av
import espeakng_loader
import numpy as np

HERE = Path(__file__).resolve().parent / "speech"
AUDIO_OUTPUT_SYNCHRONOUS, POS_CHARACTER, ESPEAK_CHARS_UTF8 = 2, 1, 1
CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def synthesize(text: str) -> tuple[np.ndarray, int]:
    """16-bit mono samples of ``text`` and their rate (espeak-ng's 22050 Hz)."""
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
    if rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed: {rate}")
    chunks: list[np.ndarray] = []

    def collect(wav, n, _events):  # called with each block of samples; wav is NULL at the end
        if wav and n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    keep = CALLBACK(collect)  # held for the duration of the call (ctypes frees unreferenced callbacks)
    lib.espeak_SetSynthCallback(keep)
    if lib.espeak_SetVoiceByName(b"en") != 0:
        raise RuntimeError("espeak-ng has no 'en' voice")
    data = text.encode()
    err = lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
    if err != 0:
        raise RuntimeError(f"espeak_Synth failed: {err}")
    return np.concatenate(chunks).astype(np.int16), rate


def write_opus(samples: np.ndarray, rate: int, path: Path) -> None:
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=16000, layout="mono")
        stream.bit_rate = 32000
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            out.mux(stream.encode(resampled))
        out.mux(stream.encode(None))


if __name__ == "__main__":
    for i, sentence in enumerate((HERE / "sentences.txt").read_text().splitlines()):
        samples, rate = synthesize(sentence)
        write_opus(samples, rate, HERE / f"{i}.ogg")
        print(f"{i}.ogg: {samples.size / rate:.1f} s, {(HERE / f'{i}.ogg').stat().st_size} bytes: {sentence}")
