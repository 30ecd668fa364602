"""The full-build tier (opt-in, an hour or more per kernel on 2 cores): `fwgen build vexpress`
with real Buildroot, to bootable images that pass every smoke check, then flash and release.

Run it with `scripts/test --full-build` (it sets FWGEN_TEST_FULL_BUILD=1 and selects this
tier); otherwise every test here is skipped. No internet is needed: the sources come from a mirror
that ../shared/tools/stock-buildroot-mirror stocks from Debian's source archive, PyPI and
../shared/sources/ (read that tool's README), served on 127.0.0.1 by a plain HTTP server.

fwgen runs as a user runs it, in a subprocess, with the same command line as on the internet;
what differs is named here, once:
- `--buildroot-src`: the stock tool's rewritten copy of Buildroot 2025.02.16 (its .hash lines
  name the substituted sources; the pinned release tarball cannot be downloaded here);
- `--mirror URL`: the stocked mirror (Buildroot's BR2_PRIMARY_SITE, and fwgen's own first
  download location);
- the recipe is a copy of board/vexpress/ (with br2-external/patches and overlays/ copied
  next to it, as the recipe's relative paths expect) whose two kernel pins are swapped: the
  4.0 tarball is ../shared/sources/linux-4.0.tar.xz (a tree import, not kernel.org's file)
  and the "6.1.174" tarball is Debian's linux-source-6.1 (6.1.192) under that name.

Settings: FWGEN_TEST_FULL_BUILD_DIR keeps the work (mirror, downloads, ccache) between runs
(default: a pytest temp dir); each run still builds from an empty output directory.
FWGEN_TEST_STOCK_MIRROR_TOOL and FWGEN_TEST_STOCK_MIRROR_EXTRA override the tool and its
--extra directory.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from xml.etree import ElementTree

import pytest

from fwgen import fsutil
from tests.conftest import DEBIAN_LINUX_61

pytestmark = pytest.mark.fullbuild

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
STOCK_TOOL = Path(
    os.environ.get(
        "FWGEN_TEST_STOCK_MIRROR_TOOL",
        SHARED / "tools" / "stock-buildroot-mirror" / "stock-buildroot-mirror",
    )
)
STOCK_EXTRA = Path(
    os.environ.get("FWGEN_TEST_STOCK_MIRROR_EXTRA", SHARED / "sources" / "buildroot-extra")
)
BOARD_FILES = ("board.toml", "linux.fragment", "genimage.cfg", "post-image.sh")
# The edit the rebuild test makes to the feature patch: one line, visible in dmesg.
EDITED_FROM = "mykthread: cannot run"
EDITED_TO = "mykthread (edited by the full-build tier): cannot run"


def _need(var: str) -> Path:
    value = os.environ.get(var)
    if not value or not Path(value).exists():
        pytest.fail(f"the full-build tier needs {var} (scripts/test --full-build sets it)")
    return Path(value)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    given = os.environ.get("FWGEN_TEST_FULL_BUILD_DIR")
    root = Path(given) if given else tmp_path_factory.mktemp("full-build")
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


@pytest.fixture(scope="module")
def stocked(work) -> tuple[Path, Path]:
    """(the rewritten Buildroot copy, the stocked mirror directory)."""
    buildroot = _need("FWGEN_TEST_BUILDROOT_SRC")
    linux40 = _need("FWGEN_TEST_LINUX40_SRC")
    if not STOCK_TOOL.is_file():
        pytest.fail(f"{STOCK_TOOL} is missing (FWGEN_TEST_STOCK_MIRROR_TOOL)")
    if not DEBIAN_LINUX_61.is_file():
        pytest.fail(f"{DEBIAN_LINUX_61} is missing: apt-get install linux-source-6.1")
    tree = work / "buildroot-copy"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir()
    subprocess.run(
        ["tar", "-xf", str(buildroot), "-C", str(tree), "--strip-components=1"], check=True
    )
    (tree / ".stock-buildroot-mirror-copy").touch()
    mirror = work / "mirror"
    with (work / "stock.log").open("w") as log:
        subprocess.run(
            [
                sys.executable,
                str(STOCK_TOOL),
                "--buildroot",
                str(tree),
                "--out",
                str(mirror),
                "--extra",
                str(STOCK_EXTRA),
                "--linux-4.0",
                str(linux40),
                "--linux-6.1",
                str(DEBIAN_LINUX_61),
                "--cache",
                str(work / "stock-cache"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return tree, mirror


@contextlib.contextmanager
def _serving(directory: Path) -> Iterator[str]:
    handler = partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def mirror_url(stocked) -> Iterator[str]:
    with _serving(stocked[1]) as url:
        yield url


@pytest.fixture(scope="module")
def recipe(work, stocked) -> Path:
    """A copy of board/vexpress with its kernel pins swapped for the stocked tarballs."""
    mirror = stocked[1]
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    (data / "board" / "vexpress").mkdir(parents=True)
    for name in BOARD_FILES:
        shutil.copy2(REPO / "board" / "vexpress" / name, data / "board" / "vexpress" / name)
    shutil.copytree(REPO / "br2-external" / "patches", data / "br2-external" / "patches")
    shutil.copytree(REPO / "overlays", data / "overlays")
    path = data / "board" / "vexpress" / "board.toml"
    text = path.read_text()
    for pinned, file in (
        ("0f2f7d44979bc8f71c4fc5d3308c03499c26a824dd311fdf6eef4dee0d7d5991", "linux-4.0.tar.xz"),
        (
            "ed88346df623ae9150d11b5feb16ddb52c25aef563bb7803ab160bb4493fe06e",
            "linux-6.1.174.tar.xz",
        ),
    ):
        assert f'sha256 = "{pinned}"' in text, f"{file}'s pin moved: update this test"
        text = text.replace(pinned, fsutil.sha256_file(mirror / file))
    path.write_text(text)
    return path


def _fwgen(work: Path, name: str, *args: str, check: bool = True) -> str:
    """Run fwgen as a user does; its output goes to <work>/logs/<name>.log and is returned."""
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    env = {**os.environ, "FWGEN_CACHE_DIR": str(work / "cache")}
    with (logs / f"{name}.log").open("w") as log:
        code = subprocess.run(
            [sys.executable, "-m", "fwgen", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
        ).returncode
    text = (logs / f"{name}.log").read_text()
    if check and code != 0:
        pytest.fail(f"fwgen {' '.join(args)} exited {code}; the end of its output:\n{text[-6000:]}")
    return text


def _build(work, recipe, stocked, mirror_url, variant: str, name: str) -> str:
    return _fwgen(
        work,
        name,
        "build",
        str(recipe),
        "--kernel",
        variant,
        "-o",
        str(work / "build"),
        "--buildroot-src",
        str(stocked[0]),
        "--mirror",
        mirror_url,
    )


def _smoke(work, recipe, variant: str, name: str) -> dict[str, str]:
    """fwgen smoke on the build's images: {check name: PASS|FAIL|SKIP} from its JUnit XML."""
    images = work / "build" / f"vexpress-{variant}" / "images"
    junit = work / "logs" / f"{name}.xml"
    junit.unlink(missing_ok=True)
    text = _fwgen(
        work,
        name,
        "smoke",
        str(recipe),
        "--kernel",
        variant,
        "--images",
        str(images),
        "--junit",
        str(junit),
        "--timeout-multiplier",
        "3",
        check=False,
    )
    results = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        failed = case.find("failure") is not None
        results[case.get("name", "")] = (
            "FAIL" if failed else "SKIP" if case.find("skipped") is not None else "PASS"
        )
    print(f"smoke {variant} ({name}): {results}")
    assert "smoke PASSED" in text, text[-4000:]
    return results


@pytest.mark.parametrize("variant", ["4.0", "6.1"])
def test_full_build_boots_flashes_and_releases(work, recipe, stocked, mirror_url, variant):
    out = work / "build" / f"vexpress-{variant}"
    shutil.rmtree(out, ignore_errors=True)  # a complete build, every run
    text = _build(work, recipe, stocked, mirror_url, variant, f"build-{variant}")
    assert "first build in this output directory" in text
    assert "kconfig stage with Buildroot's toolchain" in text
    images = out / "images"
    manifest = json.loads((images / "manifest.json").read_text())
    assert manifest["build"] == "buildroot" and manifest["kernel"]["variant"] == variant
    assert manifest["toolchain"]["prefix"].startswith("arm-buildroot-linux-gnueabihf-")
    if variant == "6.1":  # its Kconfig asked a compiler: Buildroot's, not the host's
        config = (out / "fwgen" / "linux.config").read_text()
        assert re.search(r'^CONFIG_CC_VERSION_TEXT=".*Buildroot 2025\.02\.16.*"$', config, re.M)

    results = _smoke(work, recipe, variant, f"smoke-{variant}")
    for name in (
        "boot to login",
        "mykthread is running",
        "myevent_handler holds the handler set at boot",
        "demo module loads",
        "demo helper records hello when the module unloads",
    ):
        assert results.get(name) == "PASS", (name, results)
    assert set(results.values()) == {"PASS"}, results

    card = work / f"card-{variant}.img"
    card.unlink(missing_ok=True)
    _fwgen(
        work,
        f"flash-{variant}",
        "flash",
        str(recipe),
        "--kernel",
        variant,
        "--images",
        str(images),
        "--device",
        str(card),
        "--yes",
    )
    assert fsutil.sha256_file(card) == fsutil.sha256_file(images / "sdcard.img")

    dist = work / "dist"
    shutil.rmtree(dist / f"vexpress-{variant}-tier", ignore_errors=True)
    (dist / f"vexpress-{variant}-tier.tar.gz").unlink(missing_ok=True)
    _fwgen(
        work,
        f"release-{variant}",
        "release",
        str(recipe),
        "--kernel",
        variant,
        "--images",
        str(images),
        "--version",
        "tier",
        "--out",
        str(dist),
    )
    verified = _fwgen(
        work,
        f"verify-{variant}",
        "release",
        "--verify",
        str(dist / f"vexpress-{variant}-tier.tar.gz"),
    )
    assert "OK" in verified


STEP_LINE = re.compile(
    r"^(?:\x1b\[7m)?>>> (\S+) +(?:\S+ +)?"
    r"(Extracting|Patching|Configuring|Building|Syncing|Installing)\b"
)


def _steps(build_log: Path) -> set[tuple[str, str]]:
    """(package, step) of each `>>> package version step` line Buildroot wrote in this build's
    log; the lines come wrapped in terminal escapes, and a local package has no version."""
    steps = set()
    for line in build_log.read_text().splitlines():
        match = STEP_LINE.match(line)
        if match:
            steps.add((match.group(1), match.group(2)))
    return steps


def test_rebuild_planner_on_the_real_build(work, recipe, stocked, mirror_url):
    """After the 4.0 build above: nothing changed, a one-line patch change, an overlay change.

    Each build must do what its plan says, no more; smoke proves the images carry the change.
    """
    out = work / "build" / "vexpress-4.0"
    if not (out / "images" / "manifest.json").is_file():
        pytest.skip("needs the 4.0 full build of test_full_build_boots_flashes_and_releases")
    build_log = out / "fwgen" / "build.log"
    zimage = out / "images" / "zImage"

    # (c) nothing changed
    before = fsutil.sha256_file(zimage)
    log_before = build_log.stat().st_mtime_ns
    text = _build(work, recipe, stocked, mirror_url, "4.0", "rebuild-nothing")
    assert "no input changed since the last build" in text
    assert "up to date" in text
    assert build_log.stat().st_mtime_ns == log_before  # Buildroot's make did not run
    assert fsutil.sha256_file(zimage) == before

    # (a) one line of the feature patch changes: the kernel and the module are rebuilt, nothing
    # else; the new kernel says so in dmesg.
    series = recipe.parent.parent.parent / "br2-external" / "patches" / "linux" / "4.0"
    edited = [p for p in sorted(series.glob("*.patch")) if EDITED_FROM in p.read_text()]
    assert edited, f"no patch of {series} contains {EDITED_FROM!r}"
    for patch in edited:
        patch.write_text(patch.read_text().replace(EDITED_FROM, EDITED_TO))
    with recipe.open("a") as f:
        f.write(
            '\n[smoke.checks."the edited patch line is in the new kernel"]\n'
            'setup = "echo /nonexistent > /proc/sys/kernel/myevent_handler && '
            'kill -USR1 $(pidof mykthread)"\n'
            f"run = \"dmesg | grep -F '{EDITED_TO}'\"\n"
            "poll = 0.5\n"
        )
    text = _build(work, recipe, stocked, mirror_url, "4.0", "rebuild-patch")
    assert "kernel patch series changed" in text
    assert "brought to the new series in place" in text
    built = _steps(build_log)
    assert ("linux", "Building") in built
    assert ("linux", "Extracting") not in built  # the kept tree, not a new one
    assert ("usermodehelper-demo", "Building") in built
    assert ("myevent-source", "Building") in built
    assert not {
        p for p, _ in built if p in ("busybox", "glibc") or p.startswith(("host-", "toolchain"))
    }, built
    assert fsutil.sha256_file(zimage) != before
    assert (
        _smoke(work, recipe, "4.0", "smoke-patch")["the edited patch line is in the new kernel"]
        == "PASS"
    )

    # (b) the overlay changes: a plain make; the new file is in the image, the kernel is not
    # rebuilt.
    kernel_now = fsutil.sha256_file(zimage)
    marker = recipe.parent.parent.parent / "overlays" / "common" / "etc" / "fwgen-tier-marker"
    marker.write_text("overlay edited by the full-build tier\n")
    with recipe.open("a") as f:
        f.write(
            '\n[smoke.checks."the overlay change is in the new root filesystem"]\n'
            'run = "cat /etc/fwgen-tier-marker"\n'
            "expect = '^overlay edited by the full-build tier$'\n"
        )
    text = _build(work, recipe, stocked, mirror_url, "4.0", "rebuild-overlay")
    assert "rootfs overlay: 1 added or changed" in text
    built = _steps(build_log)
    assert not {p for p, step in built if step == "Building"}, built
    assert fsutil.sha256_file(zimage) == kernel_now
    assert (
        _smoke(work, recipe, "4.0", "smoke-overlay")[
            "the overlay change is in the new root filesystem"
        ]
        == "PASS"
    )
