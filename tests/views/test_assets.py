"""Pinned page scripts: fetched once from an npm registry (a loopback one here), checked against the
pinned sha512 integrity, cached; a wrong checksum or no registry is a clear error."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from loopback import Loopback

from memento_lab.views.assets import AssetError, NpmAsset, fetch


def tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch):
    tgz = tarball({"package/dist/embed.js": b"console.log('widgets')", "package/other.js": b"x"})
    server = Loopback(
        lambda path: (
            (200, "application/octet-stream", tgz)
            if path == "/@scope/pkg/-/pkg-1.2.3.tgz"
            else (404, "text/plain", "no")
        )
    )
    monkeypatch.setenv("MEMENTO_NPM_REGISTRY", server.url)
    yield server, integrity(tgz)
    server.close()


def test_fetch_checks_extracts_and_caches(registry, tmp_path: Path) -> None:
    server, good = registry
    asset = NpmAsset(package="@scope/pkg", version="1.2.3", member="package/dist/embed.js", integrity=good)
    path = fetch(asset, tmp_path)
    assert path.read_bytes() == b"console.log('widgets')"
    assert path == tmp_path / "js" / "@scope+pkg-1.2.3" / "embed.js"
    assert fetch(asset, tmp_path) == path and len(server.requests) == 1  # cached: no second download


def test_fetch_refuses_a_tarball_with_another_checksum(registry, tmp_path: Path) -> None:
    asset = NpmAsset(
        package="@scope/pkg", version="1.2.3", member="package/dist/embed.js", integrity=integrity(b"other")
    )
    with pytest.raises(AssetError, match=r"pkg-1.2.3.tgz: sha512 .* != pinned"):
        fetch(asset, tmp_path)
    assert not (tmp_path / "js").exists() or not any((tmp_path / "js").rglob("*.js"))


def test_fetch_names_the_missing_member_and_the_unreachable_registry(registry, tmp_path: Path) -> None:
    _, good = registry
    missing = NpmAsset(package="@scope/pkg", version="1.2.3", member="package/dist/nope.js", integrity=good)
    with pytest.raises(AssetError, match=r"pkg-1.2.3.tgz: no file package/dist/nope.js"):
        fetch(missing, tmp_path)
    absent = NpmAsset(package="@scope/pkg", version="9.9.9", member="package/dist/embed.js", integrity=good)
    with pytest.raises(AssetError, match=r"pkg@9.9.9 is not cached and cannot be fetched .*views.assets"):
        fetch(absent, tmp_path)


def test_plotly_js_is_the_basic_bundle_only_when_the_figures_allow_it() -> None:
    from plotly.offline import get_plotlyjs

    from memento_lab.views.assets import PLOTLY_BASIC, plotly_js

    basic = PLOTLY_BASIC.path().read_text(encoding="utf-8")  # fetched by `make install`
    assert plotly_js({"scatter", "bar"}) == basic and len(basic) < len(get_plotlyjs()) / 3
    assert plotly_js({"scatter", "heatmap"}) == get_plotlyjs()  # a trace type the basic bundle lacks
