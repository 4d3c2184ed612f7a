"""The README's first hour: the example configs run end to end (against a loopback endpoint), every
``memento-lab`` command shown in README.md and docs/ parses, and every link to docs/ resolves."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import anyio
import pytest
from loopback import FakeOpenAI, completion
from support import ROOT, asked

from memento_lab.cli import build_parser, main
from memento_lab.experiments.config import ExperimentConfig

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def spelled_backward(request: dict) -> tuple[int, dict, dict]:
    """A fake model that reverses the word of a spell_backward task and answers '1' otherwise."""
    task = asked(request)
    word = re.search(r"Spell this word backward \(example: sun -> nus\): (\w+)", task)
    return 200, completion(json.dumps({"final_answer": word[1][::-1] if word else "1"})), {}


def use_endpoint(monkeypatch, fake: FakeOpenAI) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "k")


@pytest.mark.anyio
async def test_example_run_config_runs_and_records_its_code(tmp_path, monkeypatch, capsys) -> None:
    example = tomllib.loads((ROOT / "examples" / "run.toml").read_text())
    out = tmp_path / "example"
    with FakeOpenAI(spelled_backward) as fake:
        use_endpoint(monkeypatch, fake)
        argv = ["run", "--config", str(ROOT / "examples" / "run.toml"), "--out", str(out)]
        assert await anyio.to_thread.run_sync(main, argv) == 0
    result = json.loads(capsys.readouterr().out)
    families = example["suite"].split(":", 1)[1].split(",")
    assert result["rows"] == len(fake.requests) == example["n"] * len(families) * example["iterations"]
    stored = ExperimentConfig.model_validate_json((out / "config.json").read_text())
    assert {k: getattr(stored, k) for k in example if k != "out"} == {
        k: v for k, v in example.items() if k != "out"
    }
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    spelled = [r for r in rows if r["family"] == "spell_backward"]
    assert spelled and all(r["reward"] == 1.0 for r in spelled)  # the fake's reversals are scored right
    assert rows[0]["n_retrieved"] == 0  # the first episode finds an empty bank
    assert all(r["n_retrieved"] == example["k"] for r in rows if r["iteration"] == 1)
    info = json.loads((out / "run.json").read_text())
    from memento_lab import __version__

    assert info["version"] == __version__
    assert re.fullmatch(r"[0-9a-f]{40}", info["git_commit"])  # tests run from a checkout


@pytest.mark.anyio
async def test_example_sweep_config_runs_every_arm(tmp_path, monkeypatch, capsys) -> None:
    text = (ROOT / "examples" / "sweep.toml").read_text()
    example = tomllib.loads(text)
    out = tmp_path / "sweep"
    config = tmp_path / "sweep.toml"
    config.write_text(text.replace(f'out = "{example["out"]}"', f'out = "{out}"'))
    with FakeOpenAI(spelled_backward) as fake:
        use_endpoint(monkeypatch, fake)
        assert await anyio.to_thread.run_sync(main, ["sweep", "--config", str(config)]) == 0
    grid = example["sweep"]
    runs = sorted(p.name for p in out.iterdir() if (p / "results.jsonl").exists())
    expected = sorted(
        f"{m}-k{example['k']}-s{s}-o{o}"
        for m in grid["memories"]
        for s in grid["seeds"]
        for o in grid["orders"]
    )
    assert runs == expected
    capsys.readouterr()
    assert main(["report", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {a["label"] for a in report["arms"]} == {f"agent=direct memory={m}" for m in grid["memories"]}


@pytest.mark.anyio
async def test_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys) -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Ten lines of Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)[1]
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    monkeypatch.chdir(tmp_path)  # the example writes to data/runs/py/
    with FakeOpenAI(spelled_backward) as fake:
        use_endpoint(monkeypatch, fake)  # `model` names the embedded model: an endpoint takes its place
        await anyio.to_thread.run_sync(exec, compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[0] for line in printed[:2]] == ["none", "similarity"]
    assert printed[2:] == [  # the fake answers alike with and without memory: no difference
        f"agent=direct memory=similarity - agent=direct memory=none, iteration {i}: +0.00 [+0.00, +0.00]"
        for i in (0, 1)
    ]
    assert sorted(p.name for p in (tmp_path / "data" / "runs" / "py").iterdir()) == ["none", "similarity"]


def shown_commands(page: Path) -> list[str]:
    """The ``memento-lab ...`` commands of a page's fenced code blocks (continuation lines joined)."""
    blocks, language, lines = [], None, []
    for line in page.read_text().splitlines():
        if line.startswith("```") and language is None:
            language, lines = line[3:].strip() or "text", []
        elif line.startswith("```"):
            blocks += ["\n".join(lines)] if language in ("bash", "sh", "text") else []
            language = None
        elif language is not None:
            lines.append(line)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", line.strip())  # env assignments before it
            for part in re.split(r"\s+&&\s+", line):
                if part.startswith("memento-lab "):
                    commands.append(part)
    return commands


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_shown_parses(page: Path) -> None:
    parser = build_parser()
    commands = shown_commands(page)
    for command in commands:
        argv = shlex.split(command, comments=True)[1:]
        if re.search(r"\.\.\.|…|\s\[-", command):
            continue  # usage notation (elided or optional parts), not a command to run as it is
        try:
            parser.parse_args(argv)
        except SystemExit as stop:
            if stop.code != 0:  # --help and --version exit 0
                raise AssertionError(f"{page.name}: `{command}` does not parse") from stop
        for i, arg in enumerate(argv):
            if arg == "--config" and argv[i + 1].startswith("examples/"):
                assert (ROOT / argv[i + 1]).is_file(), f"{page.name}: {argv[i + 1]} is missing"
    if page.name == "README.md":
        assert any("--config examples/run.toml" in c for c in commands)
        assert any("--config examples/sweep.toml" in c for c in commands)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_to_files_and_headings_resolve(page: Path) -> None:
    text = page.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: link to {target} (no such file)"
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", file.read_text(), flags=re.S), re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: link to {target} (no such heading)"


def test_readme_opens_with_a_table_of_contents_that_reaches_the_docs() -> None:
    text = (ROOT / "README.md").read_text()
    top = text[: text.index("\n## ", text.index("## Contents") + 1)]
    assert "## Contents" in text[:3000]
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)", top))
    assert linked == {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}  # every page is reachable
