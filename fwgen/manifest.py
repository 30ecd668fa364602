"""manifest.json: the contract between a build and everything after it.

Both build paths write a `Manifest` into images/; `fwgen smoke`, `flash` and `release` read
it only through `from_record` (a release embeds the record unchanged). The record carries
`manifest_version`; one written by another version of fwgen, or a JSON file that is not an
fwgen manifest, is refused with an error that says what to do instead of being half-read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fwgen import __version__
from fwgen.errors import FwgenError

VERSION = 1
BUILD_KINDS = ("buildroot", "kernel-only")
REBUILD = "rebuild the images with this fwgen (fwgen build BOARD)"


@dataclass(frozen=True)
class KernelBuild:
    variant: str  # the recipe's kernel variant: "4.0"
    version: str  # the kernel version built: "4.0"
    release: str  # what `uname -r` says: "4.0.0"
    source: Mapping[str, Any]  # tarball_source(), or a tree {kind, tree, version, git, ...}
    series: Mapping[str, str]  # patch file -> sha256, in the order applied
    config_sha256: str
    device_tree: str


def source_words(source: Mapping[str, Any]) -> str:
    """What a kernel was built from (`KernelBuild.source`), in words."""
    if source.get("kind") == "tree":
        words = f"the source tree '{source.get('tree', '?')}'"
        if source.get("version"):
            words += f" (linux {source['version']})"
        git = source.get("git") or {}
        if git.get("commit"):
            words += f", git commit {git['commit']}" + (" with changes" if git.get("dirty") else "")
        if source.get("content_sha256"):
            words += f", sha256 over its files {source['content_sha256']}"
        return words
    return f"{source.get('tarball', '?')} (sha256 {source.get('sha256', '?')})"


def tarball_source(name: str, sha256: str) -> dict[str, str]:
    """A kernel source that is a tarball, as `KernelBuild.source` records it."""
    return {"kind": "tarball", "tarball": name, "sha256": sha256}


@dataclass(frozen=True)
class Module:
    name: str  # the .ko's name: usermodehelper_demo
    package: str  # the br2-external package that builds it
    source: str  # sha256 over the package's source folder
    sha256: str  # the built .ko ("" when the build did not install it)


@dataclass(frozen=True)
class BuildrootInputs:
    version: str
    file: str
    sha256: str
    tree_version: str  # what the tree used says it is (a given tree may differ from the pin)
    defconfig_sha256: str


@dataclass(frozen=True)
class Manifest:
    board: str
    build: str  # one of BUILD_KINDS
    kernel: KernelBuild
    toolchain: Mapping[str, str]
    modules: tuple[Module, ...]
    overlays: Mapping[str, str]  # overlay name -> sha256 over its files
    rootfs: Mapping[str, str] | None = None  # kernel-only: the root filesystem's identity
    buildroot: BuildrootInputs | None = None  # Buildroot builds: what built them
    images: Mapping[str, str] = field(default_factory=dict)  # file name -> sha256
    fwgen_version: str = __version__

    def with_images(self, images: Mapping[str, str]) -> Manifest:
        return dataclasses.replace(self, images=dict(images))

    def to_record(self) -> dict[str, Any]:
        """The JSON object manifest.json holds."""
        record = {"manifest_version": VERSION, **dataclasses.asdict(self)}
        record["modules"] = list(record["modules"])
        return {k: v for k, v in record.items() if v is not None}


def from_record(data: Any, where: str) -> Manifest:
    """The manifest in `data` (manifest.json's object); FwgenError naming `where` and what to do
    when it is not an fwgen manifest, another version's, or malformed."""
    if not isinstance(data, dict) or not ({"manifest_version", "board"} & data.keys()):
        raise FwgenError(
            f"{where}: not an fwgen images manifest",
            "point --images (or -o) at the images/ folder of an fwgen build or at a release",
        )
    version = data.get("manifest_version")
    if version != VERSION:
        made_by = f"fwgen {data.get('fwgen_version', '(unknown version)')}"
        if version is None:
            what = f"written by {made_by}, before manifests had a manifest_version"
        else:
            what = f"manifest_version {version!r}, written by {made_by}"
        newer = isinstance(version, int) and version > VERSION
        raise FwgenError(
            f"{where}: {what}; this fwgen (version {__version__}) reads manifest_version {VERSION}",
            f"upgrade fwgen to read it, or {REBUILD}" if newer else REBUILD,
        )
    read = _Reader(data, where, Manifest, "manifest_version")
    kernel = _Reader(read.mapping("kernel"), f"{where}: kernel", KernelBuild)
    buildroot = data.get("buildroot")
    rootfs = data.get("rootfs")
    build = read.text("build")
    if build not in BUILD_KINDS:
        raise FwgenError(f"{where}: build is {build!r}, not one of {', '.join(BUILD_KINDS)}")
    return Manifest(
        board=read.text("board"),
        build=build,
        kernel=KernelBuild(
            variant=kernel.text("variant"),
            version=kernel.text("version"),
            release=kernel.text("release"),
            source=kernel.mapping("source"),
            series=kernel.strings("series"),
            config_sha256=kernel.text("config_sha256"),
            device_tree=kernel.text("device_tree"),
        ),
        toolchain=read.strings("toolchain"),
        modules=tuple(
            _module(m, f"{where}: modules[{i}]") for i, m in enumerate(read.list("modules"))
        ),
        overlays=read.strings("overlays"),
        rootfs=None if rootfs is None else read.strings("rootfs"),
        buildroot=None if buildroot is None else _buildroot(buildroot, f"{where}: buildroot"),
        images=read.strings("images"),
        fwgen_version=read.text("fwgen_version"),
    )


def _module(data: Any, where: str) -> Module:
    read = _Reader(data, where, Module)
    return Module(read.text("name"), read.text("package"), read.text("source"), read.text("sha256"))


def _buildroot(data: Any, where: str) -> BuildrootInputs:
    read = _Reader(data, where, BuildrootInputs)
    return BuildrootInputs(
        read.text("version"),
        read.text("file"),
        read.text("sha256"),
        read.text("tree_version"),
        read.text("defconfig_sha256"),
    )


class _Reader:
    """Typed access to one JSON object; errors name the manifest and the key."""

    def __init__(self, data: Any, where: str, kind: type, *extra: str) -> None:
        if not isinstance(data, dict):
            raise FwgenError(
                f"{where}: expected a JSON object, found {type(data).__name__}", REBUILD
            )
        known = {f.name for f in dataclasses.fields(kind)} | set(extra)
        unknown = sorted(set(data) - known)
        if unknown:
            raise FwgenError(f"{where}: unknown key '{unknown[0]}' for this fwgen", REBUILD)
        self.data, self.where = data, where

    def _get(self, key: str, kind: type, what: str) -> Any:
        if key not in self.data:
            raise FwgenError(f"{self.where}: '{key}' is missing", REBUILD)
        value = self.data[key]
        if not isinstance(value, kind):
            raise FwgenError(
                f"{self.where}: '{key}' should be {what}, not {type(value).__name__}", REBUILD
            )
        return value

    def text(self, key: str) -> str:
        return self._get(key, str, "a string")

    def mapping(self, key: str) -> dict[str, Any]:
        return self._get(key, dict, "an object")

    def list(self, key: str) -> list[Any]:
        return self._get(key, list, "a list")

    def strings(self, key: str) -> dict[str, str]:
        value = self.mapping(key)
        bad = [k for k, v in value.items() if not isinstance(v, str)]
        if bad:
            raise FwgenError(f"{self.where}: '{key}.{bad[0]}' should be a string", REBUILD)
        return dict(value)
