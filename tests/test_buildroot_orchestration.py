"""fwgen build's orchestration, against the FAKE Buildroot of tests/fake_buildroot/.

The fake imitates only the outside of Buildroot's make (defconfig, show-info, `>>>` lines,
stamps, images, per-package clean targets); everything else is real: the cache and its
verification, extraction, the kconfig stage (on a tiny Kconfig tree), rendering, the
survival check, the rebuild plan, logs, progress, the manifest. Real Buildroot:
tests/test_buildroot_real.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fwgen import brmake, brprepare, buildroot, cli, doctor, fsutil, images, paths, rebuild, runner
from fwgen.board import load_board
from fwgen.errors import FwgenError
from tests import br_testdata
from tests.conftest import restore_default_signals

BOARD = br_testdata.BOARD


@pytest.fixture
def data(tmp_path, isolated_env, monkeypatch):
    root = br_testdata.make_data_root(tmp_path / "fixture", isolated_env)
    monkeypatch.setattr(paths, "data_root", lambda: root)
    monkeypatch.setattr(doctor, "require", lambda stages, qemu_binaries=(): None)
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("FAKE_BR_")]:
        monkeypatch.delenv(name)
    return root


def _out(tmp_path: Path) -> Path:
    return tmp_path / "build" / f"{BOARD}-4.0"


def _calls(tmp_path: Path) -> list[str]:
    return (_out(tmp_path) / "fake-calls.log").read_text().split()


def _build(*extra: str) -> int:
    return cli.main(["build", BOARD, *extra])


def test_a_full_build_collects_images_with_manifest_and_checksums(data, tmp_path, capsys):
    assert _build() == 0
    out = _out(tmp_path)
    imgs = out / "images"
    assert capsys.readouterr().out.strip() == str(imgs / "manifest.json")
    assert sorted(p.name for p in imgs.iterdir()) == [
        "SHA256SUMS",
        "manifest.json",
        "rootfs.ext2",
        "sdcard.img",
        "sdcard.img.bmap",
        "start-qemu.sh",
        "vexpress-v2p-ca9.dtb",
        "zImage",
    ]
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=imgs, check=True)
    assert images.verify(imgs) == []
    manifest = json.loads((imgs / "manifest.json").read_text())
    fw = out / "fwgen"
    assert manifest["board"] == BOARD and manifest["build"] == "buildroot"
    kernel = manifest["kernel"]
    assert kernel["variant"] == "4.0" and kernel["version"] == "4.0"
    assert kernel["release"] == "4.0.0"
    assert kernel["series"] == {
        "0001-test.patch": fsutil.sha256_file(
            data / "br2-external" / "patches" / "linux" / "4.0" / "0001-test.patch"
        )
    }
    assert kernel["config_sha256"] == fsutil.sha256_file(fw / "linux.config")
    assert kernel["source"]["sha256"] == fsutil.sha256_file(
        paths.cache_dir() / "dl" / "linux-4.0.tar.xz"
    )
    assert manifest["buildroot"]["version"] == "2025.02.16"
    assert manifest["buildroot"]["defconfig_sha256"] == fsutil.sha256_file(fw / "defconfig")
    assert [(m["package"], m["name"]) for m in manifest["modules"]] == [
        ("usermodehelper-demo", "usermodehelper_demo"),
        ("myevent-source", "myevent_source"),
    ]
    assert all(m["sha256"] for m in manifest["modules"])
    assert manifest["fwgen_version"]
    assert manifest["manifest_version"] == 1
    assert images.load_manifest(imgs).to_record() == manifest  # read whole, typed
    # Buildroot was told about the external tree and the rendered defconfig, then built.
    assert _calls(tmp_path) == ["defconfig", "show-info", "toolchain", "all"]
    # The kernel tarball sits where Buildroot looks for it, as the verified file itself.
    placed = paths.cache_dir() / "buildroot-dl" / "linux" / "linux-4.0.tar.xz"
    assert placed.samefile(paths.cache_dir() / "dl" / "linux-4.0.tar.xz")
    # The kconfig stage's .config met the requirements (MODULE_UNLOAD was off in defconfig).
    assert "CONFIG_MODULE_UNLOAD=y" in (fw / "linux.config").read_text()
    state = rebuild.load_state(fw / "state.json")
    assert state is not None and state.complete
    log = (fw / "build.log").read_text()
    assert ">>> linux 4.0 Building" in log


def test_the_rendered_defconfig_reaches_buildroot_as_is(data, tmp_path):
    assert _build("-j", "3", "--mirror", "http://mirror.invalid/src") == 0
    config = (_out(tmp_path) / ".config").read_text()
    assert "BR2_JLEVEL=3\n" in config
    assert 'BR2_PRIMARY_SITE="http://mirror.invalid/src"\n' in config
    patch_dir = _out(tmp_path) / "fwgen" / "global-patch-dir"
    assert f'BR2_GLOBAL_PATCH_DIR="{patch_dir}"\n' in config
    # The series and the kernel pin reach Buildroot from the recipe, and from nowhere else.
    pin = load_board(BOARD).kernel("4.0").sha256
    for rel in ("linux/linux.hash", "linux-headers/linux-headers.hash"):
        assert f"sha256  {pin}  linux-4.0.tar.xz\n" in (patch_dir / rel).read_text()
    assert (patch_dir / "linux" / "4.0" / "series").read_text() == "0001-test.patch\n"


def test_a_second_run_with_nothing_changed_is_up_to_date_and_runs_no_make(data, tmp_path, capsys):
    assert _build() == 0
    before = (_out(tmp_path) / "images" / "manifest.json").read_bytes()
    capsys.readouterr()
    assert _build() == 0
    assert _calls(tmp_path)[4:] == []  # not even make defconfig
    captured = capsys.readouterr()
    assert "no input changed since the last build" in captured.err
    assert "up to date" in captured.err
    assert captured.out.strip() == str(_out(tmp_path) / "images" / "manifest.json")
    assert (_out(tmp_path) / "images" / "manifest.json").read_bytes() == before


def test_another_mirror_alone_leaves_a_complete_build_up_to_date(data, tmp_path, capsys):
    """The full-build tier's mirror gets a new port each session: that is not a reason to run
    Buildroot's make on a complete build again."""
    assert _build("-j", "2") == 0
    capsys.readouterr()
    assert _build("-j", "3", "--mirror", "http://127.0.0.1:9/") == 0
    assert _calls(tmp_path)[4:] == []
    err = capsys.readouterr().err
    assert "BR2_JLEVEL: 2 -> 3: changes nothing that is built" in err
    assert "changes nothing that is built" in err and "up to date" in err


def test_damaged_images_are_not_up_to_date(data, tmp_path, capsys):
    assert _build() == 0
    (_out(tmp_path) / "images" / "zImage").write_text("damaged\n")
    capsys.readouterr()
    assert _build() == 0
    # The toolchain is built and the packages are the same: make show-info's answer is reused.
    assert _calls(tmp_path)[4:] == ["defconfig", "all"]
    err = capsys.readouterr().err
    assert "up to date" not in err and "kernel .config unchanged" in err
    assert "toolchain: built by the last complete build here (no make toolchain)" in err
    assert images.verify(_out(tmp_path) / "images") == []


def test_show_info_is_asked_again_when_what_it_reads_changed(data, tmp_path):
    assert _build() == 0
    (data / "br2-external" / "package" / "usermodehelper-demo" / "src" / "extra.h").write_text(
        "/* new */\n"
    )
    assert _build() == 0
    assert _calls(tmp_path)[4:] == [
        "defconfig",
        "usermodehelper-demo-dirclean",
        "myevent-source-dirclean",
        "show-info",
        "all",
    ]


def _edit_patch(data: Path, new: str) -> None:
    patch = data / "br2-external" / "patches" / "linux" / "4.0" / "0001-test.patch"
    patch.write_text(patch.read_text().replace("= -test", f"= {new}"))


def test_a_changed_patch_is_brought_into_the_kept_kernel_tree(data, tmp_path, capsys):
    assert _build() == 0
    tree = _out(tmp_path) / "build" / "linux-4.0"
    assert "EXTRAVERSION = -test\n" in (tree / "Makefile").read_text()
    kconfig_mtime = (tree / "Kconfig").stat().st_mtime_ns
    _edit_patch(data, "-test2")
    capsys.readouterr()
    assert _build() == 0
    assert _calls(tmp_path)[4:] == [
        "defconfig",
        "linux-clean-for-rebuild",
        "usermodehelper-demo-dirclean",
        "myevent-source-dirclean",
        "all",
    ]
    err = capsys.readouterr().err
    assert "kernel patch series changed (changed 0001-test.patch): the kernel's build " in err
    assert "files that differ from the last build's tree: Makefile" in err
    # Rewritten where the series changed it, left alone elsewhere; not extracted again.
    assert "EXTRAVERSION = -test2\n" in (tree / "Makefile").read_text()
    assert (tree / "Kconfig").stat().st_mtime_ns == kconfig_mtime
    log = (_out(tmp_path) / "fwgen" / "build.log").read_text()
    assert ">>> linux 4.0 Building" in log and ">>> busybox" not in log
    assert ">>> linux 4.0 Extracting" in log and "fake: linux extracting" in log
    state = rebuild.load_state(_out(tmp_path) / "fwgen" / "state.json")
    assert state is not None and state.complete and state.inputs.series is not None


def test_without_the_old_series_the_kernel_is_dircleaned(data, tmp_path, capsys):
    assert _build() == 0
    # The copy Buildroot applied is gone: fwgen cannot know what the tree holds.
    shutil.rmtree(_out(tmp_path) / "fwgen" / "global-patch-dir" / "linux" / "4.0")
    _edit_patch(data, "-test2")
    capsys.readouterr()
    assert _build() == 0
    assert _calls(tmp_path)[4:6] == ["defconfig", "linux-dirclean"]
    assert "kernel patch series changed (changed 0001-test.patch)\n" in capsys.readouterr().err
    tree = _out(tmp_path) / "build" / "linux-4.0"
    assert "EXTRAVERSION = -test2\n" in (tree / "Makefile").read_text()


def test_a_series_that_does_not_apply_leaves_the_kept_tree_and_its_record(data, tmp_path):
    assert _build() == 0
    patch = data / "br2-external" / "patches" / "linux" / "4.0" / "0001-test.patch"
    good = patch.read_text()
    patch.write_text(good.replace(" SUBLEVEL = 0\n", " SUBLEVEL = 9\n"))  # context not there
    assert _build() == 2
    tree = _out(tmp_path) / "build" / "linux-4.0"
    assert "EXTRAVERSION = -test\n" in (tree / "Makefile").read_text()
    patch.write_text(good.replace("= -test", "= -test2"))
    assert _build() == 0
    calls = _calls(tmp_path)
    assert "linux-dirclean" not in calls and "linux-clean-for-rebuild" in calls
    assert "EXTRAVERSION = -test2\n" in (tree / "Makefile").read_text()


def test_a_run_interrupted_between_two_series_dircleans_the_kernel_next(
    data, tmp_path, monkeypatch, capsys
):
    assert _build() == 0

    def interrupted(*args, before_change, **kwargs):
        before_change()  # the new series applies: the first file is about to change
        raise KeyboardInterrupt

    _edit_patch(data, "-test2")
    with monkeypatch.context() as m:
        m.setattr(buildroot.kerneltree, "update", interrupted)
        with pytest.raises(KeyboardInterrupt):
            buildroot.build(buildroot.BuildOptions(board=BOARD))
    # Even with the series the tree had before: the tree may hold part of another one.
    _edit_patch(data, "-test")
    capsys.readouterr()
    assert _build() == 0
    assert _calls(tmp_path)[4:6] == ["defconfig", "linux-dirclean"]
    assert "left between two series by an interrupted run" in capsys.readouterr().err


def test_a_changed_fragment_reconfigures_the_kernel(data, tmp_path):
    assert _build() == 0
    config = _out(tmp_path) / "fwgen" / "linux.config"
    before = config.stat().st_mtime_ns
    assert _build() == 0
    assert config.stat().st_mtime_ns == before  # unchanged content is not rewritten
    (data / "board" / BOARD / "linux.fragment").write_text("# nothing\n")
    assert _build() == 0
    # The second run was up to date; the third sees the new kernel .config.
    assert _calls(tmp_path)[:4] == ["defconfig", "show-info", "toolchain", "all"]
    assert _calls(tmp_path)[4:] == [
        "defconfig",
        "linux-clean-for-reconfigure",
        "usermodehelper-demo-dirclean",
        "myevent-source-dirclean",
        "all",
    ]
    assert "CONFIG_DEVTMPFS_MOUNT=y" not in config.read_text()


def test_a_removed_overlay_file_leaves_the_target(data, tmp_path):
    assert _build() == 0
    target = _out(tmp_path) / "target" / "usr" / "bin"
    assert (target / "bye").exists()
    (data / "overlays" / "common" / "usr" / "bin" / "bye").unlink()
    assert _build() == 0
    assert not (target / "bye").exists() and (target / "hello").exists()
    assert _calls(tmp_path)[4:] == ["defconfig", "all"]


def test_clean_rebuilds_everything(data, tmp_path):
    assert _build() == 0
    assert _build("--clean") == 0
    # The packages are the same (show-info's answer is reused); the toolchain is built again.
    assert _calls(tmp_path)[4:] == ["defconfig", "clean", "toolchain", "all"]
    log = (_out(tmp_path) / "fwgen" / "build.log").read_text()
    assert ">>> host-tar 1.35 Extracting" in log


def test_dry_run_prints_the_plan_and_commands_and_changes_nothing(data, tmp_path, capsys):
    assert _build("--dry-run") == 0
    text = capsys.readouterr().out
    out = _out(tmp_path)
    assert not out.exists()
    assert "dry run, nothing is changed" in text
    assert "first build in this output directory" in text
    assert f"O={out} BR2_EXTERNAL={data / 'br2-external'} BR2_DEFCONFIG=" in text
    assert "BR2_PACKAGE_USERMODEHELPER_DEMO=y" in text
    assert "linux-4.0.tar.xz: in the cache" in text


def test_dry_run_after_a_change_shows_the_targets(data, tmp_path, capsys):
    assert _build() == 0
    (data / "br2-external" / "package" / "usermodehelper-demo" / "src" / "extra.h").write_text(
        "/* new */\n"
    )
    capsys.readouterr()
    assert _build("--dry-run") == 0
    text = capsys.readouterr().out
    assert "module package or source changed (usermodehelper-demo, myevent-source)" in text
    assert "O=" in text and " usermodehelper-demo-dirclean myevent-source-dirclean\n" in text
    assert _calls(tmp_path) == ["defconfig", "show-info", "toolchain", "all"]  # nothing ran


def test_a_package_failure_names_package_step_and_log_and_a_rerun_resumes(
    data, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("FAKE_BR_FAIL", "linux")
    assert _build() == 2
    err = capsys.readouterr().err
    log = _out(tmp_path) / "fwgen" / "build.log"
    assert "failed in package linux 4.0, step: Building" in err
    assert "error: fake failure in linux" in err
    assert f"full log: {log}" in err
    assert "run the same command again" in err
    state = rebuild.load_state(_out(tmp_path) / "fwgen" / "state.json")
    assert state is not None and not state.complete
    monkeypatch.delenv("FAKE_BR_FAIL")
    assert _build() == 0
    assert "did not finish: resuming it" in capsys.readouterr().err
    text = log.read_text()
    assert ">>> host-tar" not in text and ">>> busybox" not in text
    assert ">>> linux 4.0 Extracting" in text
    assert (log.with_name("build.log.old")).exists()


def test_a_dropped_defconfig_line_stops_before_the_build(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_BR_DROP", "BR2_PACKAGE_HOST_BMAP_TOOLS")
    assert _build() == 2
    err = capsys.readouterr().err
    assert "Buildroot dropped 1 line(s) of the rendered defconfig" in err
    assert "BR2_PACKAGE_HOST_BMAP_TOOLS=y    (the .config has no BR2_PACKAGE_HOST_BMAP_TOOLS" in err
    assert _calls(tmp_path) == ["defconfig"]


def test_a_lost_kernel_requirement_is_caught_after_the_build(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_BR_KCONFIG_DROP", "CONFIG_MODULE_UNLOAD")
    assert _build() == 2
    err = capsys.readouterr().err
    assert "MODULE_UNLOAD" in err
    assert not (_out(tmp_path) / "images" / "manifest.json").exists()


def test_a_missing_image_is_reported(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_BR_NO_IMAGE", "sdcard.img.bmap")
    assert _build() == 2
    assert "lacks: sdcard.img.bmap" in capsys.readouterr().err


def test_a_wrong_buildroot_version_is_refused(data, tmp_path, capsys):
    other = br_testdata.make_data_root(
        tmp_path / "other", tmp_path / "other-cache", br_version="2024.02.1"
    )
    tree = tmp_path / "other" / "staging" / "buildroot"
    assert other.is_dir()
    assert _build("--buildroot-src", str(tree)) == 2
    err = capsys.readouterr().err
    assert "is Buildroot 2024.02.1, but board 'vexbr' is pinned to Buildroot 2025.02.16" in err


def test_buildroot_src_uses_a_given_tree(data, tmp_path):
    tree = tmp_path / "fixture" / "staging" / "buildroot"
    assert _build("--buildroot-src", str(tree)) == 0
    manifest = json.loads((_out(tmp_path) / "images" / "manifest.json").read_text())
    assert manifest["buildroot"]["tree_version"] == "2025.02.16"


def test_missing_host_tools_stop_the_build_first(data, tmp_path, monkeypatch, capsys):
    def missing(stages, qemu_binaries=()):
        raise FwgenError("this host lacks what the build needs: rsync", "apt-get install rsync")

    monkeypatch.setattr(doctor, "require", missing)
    assert _build() == 2
    assert "apt-get install rsync" in capsys.readouterr().err
    assert not _out(tmp_path).exists()


def test_low_disk_space_is_a_warning(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(brprepare, "NEEDED_FREE_BYTES", 1 << 60)
    assert _build() == 0
    assert "GB free" in capsys.readouterr().err


def test_offline_lists_missing_buildroot_sources(data, tmp_path, capsys):
    assert _build("--offline") == 2
    err = capsys.readouterr().err
    assert "offline, and 5 source(s) Buildroot needs are not in" in err
    assert "busybox/busybox-1.37.0.tar.xz  (busybox)" in err
    assert "buildroot-dl/linux/linux-4.0.tar.xz" not in err  # fwgen placed it


def test_unknown_board_and_variant(data, capsys):
    assert cli.main(["build", "nosuch"]) == 2
    assert "unknown board 'nosuch'" in capsys.readouterr().err
    assert cli.main(["build", BOARD, "--kernel", "9.9"]) == 2
    assert "no kernel variant '9.9'" in capsys.readouterr().err


def test_ctrl_c_leaves_a_resumable_build(data, tmp_path):
    """A real SIGINT to the process group (as a terminal sends it), then a resuming run."""
    script = (
        "import sys; from pathlib import Path\n"
        "from fwgen import cli, doctor, paths\n"
        f"paths.data_root = lambda: Path({str(data)!r})\n"
        "doctor.require = lambda stages, qemu_binaries=(): None\n"
        f"sys.exit(cli.main(['build', {BOARD!r}]))\n"
    )
    env = {**os.environ, "FAKE_BR_SLEEP": "30"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=restore_default_signals,
    )
    log = _out(tmp_path) / "fwgen" / "build.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if log.exists() and "Building" in log.read_text():
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the build never reached a Building step")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "keeps every step Buildroot finished" in err
    assert f"Run `fwgen build {BOARD}` again to resume" in err
    state = rebuild.load_state(_out(tmp_path) / "fwgen" / "state.json")
    assert state is not None and not state.complete
    assert _build() == 0


# --- progress, as parsed from Buildroot's output ----------------------------------------------


def test_parse_step():
    line = runner.clean_line("\x1b[7m>>> linux 4.0 Installing to target\x1b[27m\n")
    assert brmake.parse_step(line) == brmake.Step("linux", "4.0", "Installing to target")
    assert brmake.parse_step(">>> usermodehelper-demo  Syncing from source dir /x") == (
        brmake.Step("usermodehelper-demo", "", "Syncing from source dir /x")
    )
    assert brmake.parse_step(">>>   Finalizing target directory") == (
        brmake.Step("", "", "Finalizing target directory")
    )
    assert brmake.parse_step("make[1]: Entering directory") is None
    assert str(brmake.Step("usermodehelper-demo", "", "Building")) == "usermodehelper-demo Building"


def test_progress_counts_stamps_including_earlier_runs(tmp_path):
    info = {
        "a": {"type": "host", "virtual": False, "stamp_dir": "build/a-1"},
        "b": {"type": "target", "virtual": False, "stamp_dir": "build/b-2"},
        "toolchain": {"type": "target", "virtual": True, "stamp_dir": "build/toolchain"},
        "rootfs-ext2": {"type": "rootfs"},
    }
    (tmp_path / "build" / "a-1").mkdir(parents=True)
    (tmp_path / "build" / "a-1" / ".stamp_installed").touch()
    progress = brmake.Progress.from_show_info(info, tmp_path)
    assert progress.total == 2 and progress.done == {"a"}
    assert progress.feed(">>> b 2 Extracting") == brmake.Step("b", "2", "Extracting")
    assert progress.done == {"a"}
    (tmp_path / "build" / "b-2").mkdir()
    (tmp_path / "build" / "b-2" / ".stamp_installed").touch()
    progress.feed(">>>   Finalizing target directory")
    assert progress.done == {"a", "b"}
    assert str(progress.last) == "Finalizing target directory"


def test_make_environment_drops_overriding_settings():
    base = {"PATH": "/bin", "BR2_DL_DIR": "/x", "MAKEFLAGS": "-j9", "O": "/o"}
    assert brmake.make_env(base, euid=1000) == {"PATH": "/bin"}


def test_as_root_gnu_configure_is_allowed_and_the_log_says_so(caplog):
    caplog.set_level("INFO")
    brmake._reported.discard(brmake.ROOT_CONFIGURE_ENV)
    env = brmake.make_env({"PATH": "/bin"}, euid=0)
    assert env == {"PATH": "/bin", "FORCE_UNSAFE_CONFIGURE": "1"}
    assert "running as root: FORCE_UNSAFE_CONFIGURE=1" in caplog.text
    assert "FORCE_UNSAFE_CONFIGURE" not in brmake.make_env({"PATH": "/bin"}, euid=1000)


def test_full_disk_gets_its_own_hint(tmp_path):
    log = tmp_path / "build.log"
    log.write_text("cp: error writing 'x': No space left on device\n")
    assert "the disk is full" in brmake._failure_hint(log)


# --- air-gapped builds: fwgen mirror, then --mirror URL --offline -------------------------------


def _export(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "exported"
    assert cli.main(["mirror", BOARD, "-o", str(out), *extra]) == 0
    return out


def test_mirror_exports_buildroots_sources_and_fwgens_tarballs_with_checksums(
    data, tmp_path, capsys
):
    out = _export(tmp_path)
    printed = capsys.readouterr().out
    assert f"in {out}" in printed and "--offline" in printed
    # Buildroot's download-directory layout, as its make source left it ...
    assert (out / "busybox" / "busybox-1.37.0.tar.xz").read_text() == "fake source of busybox\n"
    assert (out / "tar" / "tar-1.35.tar.xz").is_file()
    # ... the kernel where Buildroot looks, and fwgen's own pinned tarballs at the top.
    board = load_board(BOARD)
    for download in (board.buildroot, board.kernel("4.0")):
        assert fsutil.sha256_file(out / download.file) == download.sha256
    assert fsutil.sha256_file(out / "linux" / "linux-4.0.tar.xz") == board.kernel("4.0").sha256
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=out, check=True)
    listed = {line.split("  ", 1)[1] for line in (out / "SHA256SUMS").read_text().splitlines()}
    on_disk = {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and p.name not in ("SHA256SUMS", "fwgen-mirror.json", "README.txt")
    }
    assert listed == on_disk
    index = json.loads((out / "fwgen-mirror.json").read_text())
    assert index["board"] == BOARD and index["kernels"] == {"4.0": "4.0"}
    assert index["files"]["busybox/busybox-1.37.0.tar.xz"]["packages"] == ["busybox"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".exported")]


def test_a_second_export_refreshes_the_mirror_and_a_foreign_directory_is_refused(
    data, tmp_path, capsys
):
    out = _export(tmp_path)
    (out / "stale-file").write_text("from an older export\n")
    assert _export(tmp_path) == out
    assert not (out / "stale-file").exists()
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_text("meow")
    capsys.readouterr()
    assert cli.main(["mirror", BOARD, "-o", str(foreign)]) == 2
    assert "not a mirror fwgen exported" in capsys.readouterr().err
    assert (foreign / "cat.jpg").read_text() == "meow"


def test_an_offline_build_from_an_exported_mirror_uses_only_that_mirror(
    data, tmp_path, monkeypatch, capsys
):
    out = _export(tmp_path)
    # The build host: an empty cache, no network; only the exported directory.
    monkeypatch.setenv("FWGEN_CACHE_DIR", str(tmp_path / "offline-cache"))
    url = f"file://{out}"
    assert _build("--mirror", url, "--offline") == 0
    config = (_out(tmp_path) / ".config").read_text()
    assert f'BR2_PRIMARY_SITE="{url}"\n' in config
    assert "BR2_PRIMARY_SITE_ONLY=y\n" in config
    assert "offline: all " in capsys.readouterr().err


def test_an_offline_build_names_the_file_the_mirror_lacks(data, tmp_path, monkeypatch, capsys):
    out = _export(tmp_path)
    (out / "busybox" / "busybox-1.37.0.tar.xz").unlink()
    (out / "busybox-1.37.0.tar.xz").unlink(missing_ok=True)
    monkeypatch.setenv("FWGEN_CACHE_DIR", str(tmp_path / "offline-cache"))
    capsys.readouterr()
    assert _build("--mirror", f"file://{out}", "--offline") == 2
    err = capsys.readouterr().err
    assert "busybox/busybox-1.37.0.tar.xz  (busybox)" in err
    assert "fwgen mirror" in err
    assert "all" not in _calls(tmp_path)  # nothing was built


def test_an_offline_build_checks_an_http_mirror_too(data, tmp_path, monkeypatch, capsys):
    from tests.test_sources_server import running

    out = _export(tmp_path)
    monkeypatch.setenv("FWGEN_CACHE_DIR", str(tmp_path / "offline-cache"))
    with running() as server:
        for path in out.rglob("*"):
            if path.is_file() and "busybox" not in path.name:
                server.route("/m/" + path.relative_to(out).as_posix(), path.read_bytes())
        capsys.readouterr()
        assert _build("--mirror", f"{server.base}/m", "--offline") == 2
        err = capsys.readouterr().err
        assert "1 source(s) Buildroot needs" in err and "busybox-1.37.0.tar.xz" in err
        assert [r.method for r in server.log if "busybox" in r.path] == ["HEAD", "HEAD"]


def test_a_remote_compile_cache_reaches_buildroots_ccache_and_its_hits_are_reported(
    data, tmp_path, capsys
):
    assert _build("--ccache-remote", "redis://cache.example.org:6379") == 0
    env = (_out(tmp_path) / "fake-env.log").read_text().splitlines()
    assert (
        "CCACHE_REMOTE_STORAGE=redis://cache.example.org:6379|connect-timeout=500"
        "|operation-timeout=5000" in env
    )
    assert f"CCACHE_BASEDIR={_out(tmp_path)}" in env
    err = capsys.readouterr().err
    assert "then remote redis://cache.example.org:6379 (read-write)" in err
    summary = "ccache: 1 compiler calls; local hits 0 (0%), remote hits 1 (100%)"
    assert summary in err
    assert summary in (_out(tmp_path) / "fwgen" / "build.log").read_text()
    assert _build("--ccache-remote", "ftp://nope") == 2
    assert "not a redis://, http:// or file:/// URL" in capsys.readouterr().err


def test_progress_after_the_toolchain_counts_only_what_is_built(tmp_path):
    info = {
        "a": {"type": "host", "stamp_dir": "build/a"},
        "b": {"type": "target", "stamp_dir": "build/b"},
    }
    (tmp_path / "build" / "a").mkdir(parents=True)
    (tmp_path / "build" / "a" / ".stamp_installed").touch()
    progress = brmake.Progress.from_show_info(info, tmp_path)
    make = brmake.Make(Path("/nonexistent"), tmp_path, make="true")
    make.build(tmp_path / "build.log", progress, targets=["toolchain"])
    assert progress.done == {"a"}
    make.build(tmp_path / "build.log", progress)
    assert progress.done == {"a", "b"}
