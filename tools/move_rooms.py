"""The second house pass's moves, as a script that can run again (idempotent) after main moves on.

    python3 tools/move_rooms.py moves     # git mv every module and test to its room, rewrite imports
    python3 tools/move_rooms.py aliases   # thin alias modules at the old module paths (one release)

Run ``moves``, commit, then ``aliases``, commit: in the first commit every old path is deleted and its
new path added, so ``git log --follow`` finds the rename. Imports are rewritten in the library, the
tests, the benchmarks, the notebooks and the servers (dotted names in code and strings alike); docs
are left alone (the aliases keep what they show working). Run from the repository root.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PKG = "memento_lab"

# old module (dotted, under memento_lab) -> new module; every one existed on main before this pass
MODULES = {
    "agent.suite_base": "tasks.base",
    "agent.suites": "tasks.suites",
    "agent.qa_suites": "tasks.qa",
    "agent.controls": "tasks.controls",
    "agent.bfcl": "tasks.bfcl",
    "agent.judges": "tasks.judges",
    "agent.unit_harness": "tasks.unit_harness",
    "agent.answers": "tasks.answers",
    "agent.replies": "agent.plans",
    "agent.parsing": "agent.models.tool_calls",
    "agent.llm": "agent.models.llm",
    "agent.local_model": "agent.models.local_model",
    "agent.cassette": "agent.models.cassette",
    "agent.mcp_client": "agent.tools.mcp_client",
    "agent.tool_servers": "agent.tools.servers",
    "agent.tool_connection": "agent.tools.connection",
    "memory.cases": "memory.bank.bank",
    "memory.case": "memory.bank.case",
    "memory.columns": "memory.bank.columns",
    "memory.index": "memory.bank.index",
    "memory.formats": "memory.bank.formats",
    "memory.encoders": "memory.bank.encoders",
    "memory.dedupe": "memory.bank.dedupe",
    "memory.snapshots": "memory.bank.snapshots",
    "memory.retrieval": "memory.retrieval.retrievers",
    "memory.render": "memory.retrieval.render",
    "memory.pairs": "memory.retrieval.pairs",
    "memory.offpolicy": "memory.retrieval.offpolicy",
    "memory.qnet": "memory.learned.qnet",
    "memory.pair_data": "memory.learned.pair_data",
    "memory.training": "memory.learned.training",
    "memory.parametric": "memory.learned.parametric",
    "memory.metrics": "memory.learned.metrics",
    "memory.training_loggers": "memory.learned.loggers",
    "memory.memory": "memory.read_write",
    "sandbox": "sandbox.isolation",
    "sandbox_run": "sandbox.run",
    "sandbox_fs": "sandbox.fs",
    "sandbox_launch": "sandbox.launch",
    "sandbox_cgroups": "sandbox.cgroups",
    "sandbox_workspace": "sandbox.workspace",
}
# new in this pass (no alias: they were never on main under the old name)
NEW_ONLY = {"memory.fit_config": "memory.learned.config"}

# tests: old file -> new file (tests mirror the packages)
TESTS = {
    "test_agent.py": "agent/test_agent.py",
    "test_answers.py": "agent/test_program_episodes.py",
    "test_episode_status.py": "agent/test_episode_status.py",
    "test_endpoint_choice.py": "agent/models/test_endpoint_choice.py",
    "test_llm.py": "agent/models/test_llm.py",
    "test_llm_endpoint_errors.py": "agent/models/test_llm_endpoint_errors.py",
    "test_tools.py": "agent/tools/test_tools.py",
    "test_tool_servers.py": "agent/tools/test_tool_servers.py",
    "test_costs.py": "experiments/test_costs.py",
    "test_faithful_runs.py": "experiments/test_faithful_runs.py",
    "test_fault_injection.py": "experiments/test_fault_injection.py",
    "test_ray_sweep.py": "experiments/test_ray_sweep.py",
    "test_run_hardening.py": "experiments/test_run_hardening.py",
    "test_stats.py": "experiments/test_stats.py",
    "test_tracking.py": "experiments/test_tracking.py",
    "test_cases.py": "memory/bank/test_bank.py",
    "test_bank_hardening.py": "memory/bank/test_bank_hardening.py",
    "test_dedupe.py": "memory/bank/test_dedupe.py",
    "test_format_export.py": "memory/bank/test_format_export.py",
    "test_index.py": "memory/bank/test_index.py",
    "test_memento_formats.py": "memory/bank/test_memento_formats.py",
    "test_retrieval.py": "memory/retrieval/test_retrieval.py",
    "test_render.py": "memory/retrieval/test_render.py",
    "test_learned_retrieval.py": "memory/learned/test_learned_retrieval.py",
    "test_retriever_model.py": "memory/learned/test_training.py",
    "test_training_ddp.py": "memory/learned/test_training_ddp.py",
    "test_training_loggers.py": "memory/learned/test_training_loggers.py",
    "test_memory.py": "memory/test_read_write.py",
    "test_policies.py": "memory/test_policies.py",
    "test_bfcl.py": "tasks/test_bfcl.py",
    "test_controls.py": "tasks/test_controls.py",
    "test_judges.py": "tasks/test_judges.py",
    "test_registry.py": "tasks/test_registry.py",
    "test_suites.py": "tasks/test_suites.py",
    "test_unit_judge_hacks.py": "tasks/test_unit_judge_hacks.py",
    "test_cli_errors.py": "cli/test_cli_errors.py",
    "test_cli_experiments.py": "cli/test_cli_experiments.py",
    "test_cli_judge.py": "cli/test_cli_judge.py",
    "test_config_docs.py": "cli/test_config_docs.py",
    "test_assets.py": "views/test_assets.py",
    "test_dashboard.py": "views/test_dashboard.py",
    "test_offline_html.py": "views/test_offline_html.py",
    "test_plots.py": "views/test_plots.py",
    "test_widgets.py": "views/test_widgets.py",
    "test_crawl.py": "servers/test_crawl.py",
    "test_media.py": "servers/test_media.py",
    "test_servers.py": "servers/test_servers.py",
    "test_notebooks.py": "notebooks/test_notebooks.py",
    "test_sandbox.py": "sandbox/test_sandbox.py",
    "test_sandbox_escapes.py": "sandbox/test_sandbox_escapes.py",
    "test_sandbox_mounts.py": "sandbox/test_sandbox_mounts.py",
    "test_sandbox_packaged.py": "sandbox/test_sandbox_packaged.py",
}
REWRITE_IN = ("memento_lab", "tests", "benchmarks", "notebooks", "servers")

ALIAS = '''"""Moved to ``{new}``; this old path still works, with a DeprecationWarning, until the next release."""

from memento_lab.exports import moved

__getattr__ = moved(__name__, "{new}")
'''


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def path_of(module: str) -> Path:
    return Path(PKG, *module.split(".")).with_suffix(".py")


def full(module: str) -> str:
    return f"{PKG}.{module}"


def move(old: Path, new: Path) -> None:
    if not old.exists() or new.exists():
        return
    new.parent.mkdir(parents=True, exist_ok=True)
    sh("git", "mv", str(old), str(new))
    print(f"moved {old} -> {new}")


def rename_map() -> dict[str, str]:
    return {full(o): full(n) for o, n in {**MODULES, **NEW_ONLY}.items()}


def rewrite_text(text: str, renames: dict[str, str], new_names: set[str]) -> str:
    """Every dotted name whose longest old-module prefix moved, rewritten (names already new are kept)."""

    def one(m: re.Match[str]) -> str:
        dotted = m.group(0)
        parts = dotted.split(".")
        for i in range(len(parts), 1, -1):
            prefix = ".".join(parts[:i])
            if prefix in renames:
                longer_new = any(".".join(parts[:j]) in new_names for j in range(i + 1, len(parts) + 1))
                if longer_new:
                    return dotted
                return renames[prefix] + dotted[len(prefix) :]
        return dotted

    text = re.sub(r"\bmemento_lab(?:\.\w+)+", one, text)

    # "from memento_lab.memory import index as ann": a moved module imported from its old parent
    def from_parent(m: re.Match[str]) -> str:
        parent, name, alias = m.group(1), m.group(2), m.group(3) or ""
        old = f"{parent}.{name}"
        if old not in renames:
            return m.group(0)
        new_parent, _, new_name = renames[old].rpartition(".")
        keep = alias or (f" as {name}" if new_name != name else "")
        return f"from {new_parent} import {new_name}{keep}"

    return re.sub(r"from (memento_lab(?:\.\w+)*) import (\w+)( as \w+)?$", from_parent, text, flags=re.M)


def rewrite_tests_paths(text: str) -> str:
    for old, new in TESTS.items():
        text = re.sub(rf"tests/{re.escape(old)}\b", f"tests/{new}", text)
    return text


def moves() -> None:
    for old, new in {**MODULES, **NEW_ONLY}.items():
        move(path_of(old), path_of(new))
    for old, new in TESTS.items():
        move(Path("tests", old), Path("tests", new))
    renames = rename_map()
    new_names = set(renames.values()) | {n.rpartition(".")[0] for n in renames.values()}
    for root in REWRITE_IN:
        for path in Path(root).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            new = rewrite_tests_paths(rewrite_text(text, renames, new_names))
            if path.parts[0] == "tests" and len(path.parts) > 2:  # a moved test: the repo root is further up
                depth = len(path.parts) - 1
                new = new.replace("Path(__file__).resolve().parent.parent", f"Path(__file__).resolve().parents[{depth}]")
            if new != text:
                path.write_text(new, encoding="utf-8")
                print(f"rewrote {path}")


def aliases() -> None:
    for old, new in MODULES.items():
        target = path_of(old)
        if target.with_suffix("").is_dir():  # the old module is now a package: its __init__ re-exports
            continue
        text = ALIAS.format(new=full(new))
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            print(f"alias {target} -> {full(new)}")


if __name__ == "__main__":
    {"moves": moves, "aliases": aliases}[sys.argv[1]]()
