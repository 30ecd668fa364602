"""Shared test setup: every test gets its own fwgen cache and no inherited fwgen settings."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.manifests import VEXPRESS_MODULE_PACKAGES

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The full-build tier runs only when asked for (scripts/test --full-build)."""
    if os.environ.get("FWGEN_TEST_FULL_BUILD") == "1":
        return
    skip = pytest.mark.skip(
        reason="the full-build tier (an hour or more per kernel): run scripts/test --full-build"
    )
    for item in items:
        if item.get_closest_marker("fullbuild"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    for name in list(os.environ):
        if name.startswith("FWGEN_") and not name.startswith("FWGEN_TEST_"):
            monkeypatch.delenv(name)
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("FWGEN_CACHE_DIR", str(cache))
    return cache


def gated_tree(var: str, proves: str) -> Path:
    """The tree named by $var, or skip saying what the test would have proved."""
    value = os.environ.get(var)
    if not value:
        pytest.skip(f"set {var} to a source tree or tarball to prove: {proves}")
    path = Path(value)
    if not path.exists():
        pytest.fail(f"{var}={value} does not exist")
    return path


def _unpack(tarball: Path, dest: Path) -> Path:
    """Unpack a kernel tarball with the system tar (test setup, not code under test)."""
    import subprocess

    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["tar", "-xf", str(tarball), "-C", str(dest), "--strip-components=1"], check=True
    )
    return dest


@pytest.fixture(scope="session")
def br_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Buildroot 2025.02.x tree from $FWGEN_TEST_BUILDROOT_SRC (a tree or a tarball)."""
    import subprocess

    from fwgen import brtree

    given = gated_tree(
        "FWGEN_TEST_BUILDROOT_SRC",
        "the external tree, the defconfig, post-image and the release run in real Buildroot",
    )
    tree = given
    if not given.is_dir():
        dest = tmp_path_factory.mktemp("buildroot")
        subprocess.run(["tar", "-xf", str(given), "-C", str(dest)], check=True)
        (tree,) = [p for p in dest.iterdir() if p.is_dir()]
    version = brtree.tree_version(tree)
    if not version.startswith("2025.02"):
        pytest.fail(f"FWGEN_TEST_BUILDROOT_SRC is Buildroot {version}, not 2025.02.x")
    return tree


DEBIAN_LINUX_61 = Path("/usr/src/linux-source-6.1.tar.xz")


@pytest.fixture(scope="session")
def linux61_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine linux 6.1 tree from Debian's linux-source-6.1 (installed by scripts/test)."""
    if not DEBIAN_LINUX_61.exists():
        message = f"{DEBIAN_LINUX_61} is missing: apt-get install linux-source-6.1"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return _unpack(DEBIAN_LINUX_61, tmp_path_factory.mktemp("linux-6.1"))


@pytest.fixture(scope="session")
def linux40_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine linux-4.0 tree from $FWGEN_TEST_LINUX40_SRC (a tree or a tarball)."""
    given = gated_tree("FWGEN_TEST_LINUX40_SRC", "the linux-4.0 side of the kernel feature")
    if given.is_dir():
        return given
    return _unpack(given, tmp_path_factory.mktemp("linux-4.0"))


@pytest.fixture(scope="session")
def kernel_builds(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Real kernel-only builds (fwgen.kernel), shared by the e2e tests of one session.

    `build(variant, feature=True)` returns the images directory; feature=False builds the same
    kernel with the board's series minus its mykthread patches, and without the module package
    that needs them (myevent-source: it includes <linux/myevent.h>). 6.1 comes from Debian's
    linux-source-6.1, 4.0 from $FWGEN_TEST_LINUX40_SRC. Builds go to $FWGEN_TEST_BUILD_DIR
    when set (a stable place lets repeated runs build incrementally), else a temp dir; ccache
    (CCACHE_BASEDIR is the build dir) makes a cold rebuild elsewhere cheap.
    """
    import dataclasses

    from fwgen.board import load_board
    from fwgen.kernel import build_kernel_only
    from tests.rootfs import make_busybox_rootfs

    stable = os.environ.get("FWGEN_TEST_BUILD_DIR")
    root = Path(stable) if stable else tmp_path_factory.mktemp("kernel-builds")
    rootfs = make_busybox_rootfs(tmp_path_factory.mktemp("e2e-rootfs") / "rootfs")
    board = load_board("vexpress")
    built: dict[tuple[str, bool], Path] = {}

    def build(variant: str, feature: bool = True) -> Path:
        if (variant, feature) in built:
            return built[(variant, feature)]
        src = request.getfixturevalue("linux61_src" if variant == "6.1" else "linux40_src")
        chosen = board.kernel(variant)
        output = root / ("with-feature" if feature else "without-feature")
        packages = VEXPRESS_MODULE_PACKAGES
        if not feature:
            packages = tuple(p for p in packages if p != "myevent-source")
            series = output / f"series-{variant}"
            series.mkdir(parents=True, exist_ok=True)
            for patch in sorted(chosen.patches_dir().glob("*.patch")):
                if "mykthread" not in patch.name:
                    (series / patch.name).write_bytes(patch.read_bytes())
            chosen = dataclasses.replace(chosen, patches=str(series.resolve()))
        images = build_kernel_only(
            board,
            variant,
            rootfs=rootfs,
            output=output,
            kernel_src=str(src),
            variant=chosen,
            module_packages=packages,
        )
        built[(variant, feature)] = images
        return images

    return build


def restore_default_signals() -> None:
    """preexec_fn for processes a test signals: default SIGINT/SIGHUP, as from a terminal,
    whatever pytest inherited (a background job ignores SIGINT, nohup ignores SIGHUP)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


VEXPRESS = REPO / "board" / "vexpress"
_PATH_KEY = re.compile(r'^(post_image_script|genimage_config|patches|fragment) = "([^"]*)"$', re.M)
_OVERLAYS = re.compile(r"^overlays = \[(.*)\]$", re.M)


def anywhere_recipe(text: str | None = None) -> str:
    """The vexpress recipe's text (or `text`, an edited copy of it) with its relative paths
    made absolute, so that a copy written into any folder loads."""
    text = (VEXPRESS / "board.toml").read_text() if text is None else text

    def absolute(value: str) -> str:
        return os.path.normpath(VEXPRESS / value)

    text = _PATH_KEY.sub(lambda m: f'{m.group(1)} = "{absolute(m.group(2))}"', text)
    return _OVERLAYS.sub(
        lambda m: (
            "overlays = ["
            + ", ".join(f'"{absolute(v.strip().strip(chr(34)))}"' for v in m.group(1).split(","))
            + "]"
        ),
        text,
    )
