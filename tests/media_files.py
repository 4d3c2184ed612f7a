"""Test media made with what the venv has (not tests): Pillow text, committed speech, PyAV video.

No system tool is needed: the spoken sentences are small committed Ogg Opus files
(``tests/data/speech/``, made once by ``tests/data/make_speech.py``), and videos are encoded by
PyAV's bundled FFmpeg (libx264 pictures, AAC sound).
"""

from __future__ import annotations

import math
import re
import shutil
import struct
import wave
from pathlib import Path
from typing import Any

SPEECH = Path(__file__).resolve().parent / "data" / "speech"
SENTENCES = (SPEECH / "sentences.txt").read_text().splitlines()
SENTENCE = SENTENCES[0]  # "the quick brown fox jumps over the lazy dog"


def text_image(text: str, size: tuple[int, int] = (480, 120)) -> Any:
    """Black text on white, Pillow's default font at 48 px (a PIL image)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text(
        (20, size[1] // 2 - 30), text, fill="black", font=ImageFont.load_default(size=48)
    )
    return image


def render_text(path: Path, text: str, size: tuple[int, int] = (480, 120)) -> Path:
    text_image(text, size).save(path)
    return path


def speech(path: Path, index: int = 0) -> Path:
    """Copy the committed recording of ``SENTENCES[index]`` (Ogg Opus) to ``path``."""
    shutil.copyfile(SPEECH / f"{index}.ogg", path)
    return path


def tone(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """A 440 Hz sine as a WAV file: sound without speech."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        n = int(seconds * rate)
        w.writeframes(
            b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(n))
        )
    return path


def encode_video(
    path: Path, slides: list[Any], seconds_each: float, sound: Path | None, fps: int = 5
) -> Path:
    """An MP4 (H.264) showing each PIL image for ``seconds_each`` s, with ``sound``'s audio as AAC."""
    import av

    width, height = slides[0].size
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=16000, layout="mono") if sound else None
        per_slide = round(seconds_each * fps)
        for i in range(per_slide * len(slides)):
            frame = av.VideoFrame.from_image(slides[i // per_slide])
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None and sound is not None:
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000)
            with av.open(str(sound)) as source:
                decoded = [*source.decode(audio=0), None]
            for piece in decoded:
                for resampled in resampler.resample(piece):
                    resampled.pts = None  # the encoder numbers the samples from 0
                    out.mux(audio.encode(resampled))
            out.mux(audio.encode(None))
    return path


def video_file(workspace: Path) -> Path:
    """``clip.mp4``: 6 s, 'SLIDE ONE' then 'SLIDE TWO 88' (3 s each), the sentence spoken from 0 s.

    ``mute.mp4``: the same pictures, no sound track.
    """
    slides = [text_image("SLIDE ONE", (640, 360)), text_image("SLIDE TWO 88", (640, 360))]
    encode_video(workspace / "mute.mp4", slides, 3.0, None)
    return encode_video(workspace / "clip.mp4", slides, 3.0, speech(workspace / "voice.ogg"))


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / len(ref)


def sentence_words_heard(text: str) -> int:
    """How many of the sentence's 9 words the transcript contains (each occurrence counted once)."""
    heard = words(text)
    count = 0
    for w in words(SENTENCE):
        if w in heard:
            heard.remove(w)
            count += 1
    return count
