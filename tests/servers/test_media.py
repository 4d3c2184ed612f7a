"""The media server on generated media: Pillow text, committed speech, a PyAV-encoded video; endpoints.

Test media needs no system tool (``media_files``). The offline models are real (RapidOCR's ONNX
models, Whisper tiny.en): those tests are ``slow``. The endpoint (vision, transcription) is a
loopback fake OpenAI server.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from loopback import FakeOpenAI, completion
from media_files import SENTENCE, render_text, sentence_words_heard, speech, tone, video_file, wer
from support import ROOT, call

from servers.media import mcp


# ------------------------------------------------------------------------------------ offline models
@pytest.mark.anyio
@pytest.mark.slow
async def test_ocr_reads_rendered_text(workspace):
    render_text(workspace / "card.png", "MEMENTO 4217")
    render_text(workspace / "blank.png", "")
    err, text = await call(mcp, "read_image_text", path="card.png")
    print(f"OCR: {text!r} (exact match: {text == 'MEMENTO 4217'})")
    assert not err and "4217" in text and "MEMENTO" in text
    assert await call(mcp, "read_image_text", path="blank.png") == (False, "No text found in the image.")


@pytest.mark.anyio
@pytest.mark.slow
async def test_transcribes_espeak_speech_offline(workspace):
    speech(workspace / "speech.ogg")
    tone(workspace / "tone.wav")
    err, text = await call(mcp, "transcribe_audio", path="speech.ogg")
    print(f"transcript: {text!r}; WER {wer(SENTENCE, text):.2f}; words heard {sentence_words_heard(text)}/9")
    assert not err and sentence_words_heard(text) >= 4
    err, timed = await call(mcp, "transcribe_audio", path="speech.ogg", timestamps=True)
    assert not err and re.match(r"\[0:0\d\.\d-0:0\d\.\d\] ", timed)
    err, text = await call(mcp, "transcribe_audio", path="tone.wav")
    assert not err and sentence_words_heard(text) <= 1  # a tone is not the sentence


@pytest.fixture
def video(workspace) -> Path:
    return video_file(workspace)


def timed(narration: str) -> list[tuple[float, str]]:
    out = []
    for line in narration.splitlines():
        m = re.match(r"\[(\d+):(\d+\.\d)(?:-[\d:.]+)?\] (.*)", line)
        if m:
            out.append((int(m[1]) * 60 + float(m[2]), m[3]))
    return out


@pytest.mark.anyio
@pytest.mark.slow
async def test_video_narration_merges_frames_and_speech_in_time(workspace, video):
    err, text = await call(mcp, "narrate_video", path="clip.mp4", every_s=1.0)
    print(text)
    assert not err
    events = timed(text)
    assert [t for t, _ in events] == sorted(t for t, _ in events)
    frames = [(t, e) for t, e in events if e.startswith("frame:")]
    assert [t for t, _ in frames] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # one a second of the 6 s clip
    assert frames[0] == (0.0, "frame: text 'SLIDE ONE'")
    two = [t for t, e in frames if "SLIDE TWO 88" in e]
    assert two and 3.0 <= two[0] <= 4.0
    read = [e for _, e in frames if "same picture" not in e]
    assert read == ["frame: text 'SLIDE ONE'", "frame: text 'SLIDE TWO 88'"]  # each slide read once
    spoken = [e for _, e in events if e.startswith("speech:")]
    assert spoken and sentence_words_heard(" ".join(spoken)) >= 4

    err, text = await call(mcp, "narrate_video", path="clip.mp4", every_s=1.0, max_frames=2, max_seconds=1.5)
    assert not err and len([e for _, e in timed(text) if e.startswith("frame:")]) == 2
    assert "[only the first 1.5 s of 6 s were read]" in text
    err, text = await call(mcp, "narrate_video", path="mute.mp4", every_s=3.0)
    assert not err and text.endswith("[no audio track]") and "SLIDE TWO 88" in text


@pytest.mark.anyio
@pytest.mark.slow
async def test_video_narration_through_the_endpoint(workspace, video, monkeypatch):
    """Vision captions for each new picture and the sound track to /audio/transcriptions."""

    def reply(body):
        if "multipart" in body:
            return 200, {"text": "a spoken sentence"}, {}
        return 200, completion("a white slide"), {}

    with FakeOpenAI(reply) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("MEMENTO_VISION_MODEL", "vision-x")
        monkeypatch.setenv("MEMENTO_TRANSCRIBE_MODEL", "whisper-big")
        err, text = await call(mcp, "narrate_video", path="clip.mp4", every_s=1.0)
    assert not err
    assert sorted(fake.paths) == ["/v1/audio/transcriptions"] + ["/v1/chat/completions"] * 2  # two pictures
    lines = text.splitlines()
    assert lines[0] == "[0:00.0] frame: text 'SLIDE ONE'; a white slide"
    assert any(
        line.startswith("[0:00.0-0:0") and line.endswith("] speech: a spoken sentence") for line in lines
    )
    assert any(line.endswith("frame: text 'SLIDE TWO 88'; a white slide") for line in lines)


@pytest.mark.slow
def test_cli_tools_call_transcribes_a_workspace_file(tmp_path):
    speech(tmp_path / "speech.ogg")
    args = ["tools", "call", "media", "transcribe_audio", json.dumps({"path": "speech.ogg"})]
    out = subprocess.run(
        [sys.executable, "-m", "memento_lab.cli", *args, "--workspace", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert sentence_words_heard(out.stdout) >= 4


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.anyio
async def test_media_refuses_bad_input_with_clear_errors(workspace, tmp_path, monkeypatch):
    (tmp_path / "outside.png").write_bytes(b"x")
    (workspace / "notes.txt").write_text("hi")
    (workspace / "broken.png").write_bytes(b"not a png")
    (workspace / "broken.wav").write_bytes(b"RIFF....not audio")
    tone(workspace / "tone.wav")
    cases = [
        ("read_image_text", {"path": "../outside.png"}, "outside the workspace"),
        ("read_image_text", {"path": "nope.png"}, "no such file"),
        ("read_image_text", {"path": "notes.txt"}, "unsupported file type '.txt'"),
        ("read_image_text", {"path": "broken.png"}, "'broken.png': cannot read the image"),
        ("transcribe_audio", {"path": "broken.wav"}, "'broken.wav': cannot decode audio"),
        ("narrate_video", {"path": "tone.wav"}, "unsupported file type '.wav'"),
        ("narrate_video", {"path": "x.mp4", "max_frames": 99}, "max_frames must be between 1 and 32"),
        ("narrate_video", {"path": "x.mp4", "every_s": 0}, "every_s must be > 0"),
    ]
    for tool, args, message in cases:
        err, text = await call(mcp, tool, **args)
        assert err and message in text, (tool, args, text)
    monkeypatch.setenv("MEMENTO_MEDIA_MAX_BYTES", "100")
    err, text = await call(mcp, "transcribe_audio", path="tone.wav")
    assert err and "over the limit of 100 bytes (MEMENTO_MEDIA_MAX_BYTES)" in text


@pytest.mark.anyio
async def test_describe_image_without_a_vision_model_says_what_to_set(workspace, monkeypatch):
    monkeypatch.delenv("MEMENTO_VISION_MODEL", raising=False)
    (workspace / "a.png").write_bytes(b"\x89PNG")
    err, text = await call(mcp, "describe_image", path="a.png")
    assert (
        err
        and "no vision model is configured (set MEMENTO_VISION_MODEL" in text
        and "read_image_text" in text
    )


# ------------------------------------------------------------------------------------ endpoint paths
@pytest.mark.anyio
async def test_describe_image_sends_a_data_url_to_the_vision_model(workspace, monkeypatch):
    png = render_text(workspace / "card.png", "MEMENTO 4217").read_bytes()
    with FakeOpenAI(lambda body: (200, completion("A white card with MEMENTO 4217."), {})) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("MEMENTO_VISION_MODEL", "vision-x")
        err, text = await call(mcp, "describe_image", path="card.png", question="What number is shown?")
    assert (err, text) == (False, "A white card with MEMENTO 4217.")
    assert fake.paths == ["/v1/chat/completions"]
    body = fake.requests[0]
    assert body["model"] == "vision-x"
    question, image = body["messages"][0]["content"]
    assert question == {"type": "text", "text": "What number is shown?"}
    assert image["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.mark.anyio
async def test_a_large_image_reaches_the_vision_model_as_a_smaller_jpeg(workspace, monkeypatch):
    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (1500, 1500, 3), dtype=np.uint8)
    Image.fromarray(noise).save(workspace / "big.png")  # ~6.8 MB: incompressible
    with FakeOpenAI(lambda body: (200, completion("noise"), {})) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("MEMENTO_VISION_MODEL", "vision-x")
        assert await call(mcp, "describe_image", path="big.png") == (False, "noise")
    url = fake.requests[0]["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.size == (1500, 1500) and image.format == "JPEG"


@pytest.mark.anyio
async def test_transcription_uses_the_endpoint_when_a_model_is_set(workspace, monkeypatch):
    tone(workspace / "tone.wav", seconds=0.5)
    with FakeOpenAI(lambda body: (200, {"text": "hello from the endpoint"}, {})) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("MEMENTO_TRANSCRIBE_MODEL", "whisper-big")
        assert await call(mcp, "transcribe_audio", path="tone.wav") == (False, "hello from the endpoint")
    assert fake.paths == ["/v1/audio/transcriptions"]
    raw = fake.requests[0]["multipart"]
    assert b'name="model"' in raw and b"whisper-big" in raw and b'filename="tone.wav"' in raw
    assert b"RIFF" in raw and b"WAVE" in raw  # 16 kHz mono WAV of the decoded samples


@pytest.mark.anyio
async def test_endpoint_failures_name_the_endpoint_and_the_call(workspace, monkeypatch):
    render_text(workspace / "card.png", "X")
    with FakeOpenAI(lambda body: (500, {"error": {"message": "boom"}}, {})) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("MEMENTO_VISION_MODEL", "vision-x")
        err, text = await call(mcp, "describe_image", path="card.png")
    assert err and f"describe_image card.png: POST {fake.base_url}/chat/completions returned HTTP 500" in text


@pytest.mark.anyio
async def test_toolbox_hands_the_endpoint_to_the_media_server(tmp_path):
    """Over stdio: the endpoint settings reach the media server process (they are not in the env)."""
    from memento_lab.agent.tools.mcp_client import ToolBox
    from memento_lab.config import Settings

    render_text(tmp_path / "card.png", "X")
    with FakeOpenAI(lambda body: (200, completion("a card"), {})) as fake:
        settings = Settings(
            openai_base_url=fake.base_url,
            openai_api_key="k-test",
            vision_model="vision-x",
            cache_dir=tmp_path,
        )
        async with ToolBox(["media"], workspace=tmp_path, settings=settings) as tb:
            described = await tb.call("describe_image", {"path": "card.png"})
    assert (described.server, described.result, described.error) == ("media", "a card", None)
    assert fake.requests[0]["model"] == "vision-x"
