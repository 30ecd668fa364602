"""Kernel configuration with kconfiglib: requirements, resolver, explain, check_config.

Three tiers: pure unit tests (.config parsing, no tree), a small real Kconfig tree written by
the test (fast resolver checks with the real kconfiglib), and the real kernels: linux 6.1 from
Debian's linux-source-6.1, linux-4.0 from $FWGEN_TEST_LINUX40_SRC.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from fwgen import kconfig, paths
from fwgen.board import load_board
from fwgen.cli import main
from fwgen.errors import FwgenError
from tests.conftest import anywhere_recipe

REQUIREMENTS = ["SYSCTL=y", "PROC_SYSCTL=y", "MODULES=y", "MODULE_UNLOAD=y"]
CROSS = kconfig.DEFAULT_CROSS_COMPILE


@pytest.fixture
def cli():
    """fwgen's main(), leaving the 'fwgen' logger as it found it (main() points it at the
    stderr of the moment, which capsys closes after the test)."""
    logger = logging.getLogger("fwgen")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield main
    logger.handlers[:], logger.level, logger.propagate = saved


# --- check_config: a finished .config against the requirements (no Kconfig tree) -----------


GOOD = """\
#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_SYSCTL=y
CONFIG_PROC_SYSCTL=y
CONFIG_MODULES=y
CONFIG_MODULE_UNLOAD=y
CONFIG_CMDLINE="console=ttyAMA0 root=/dev/mmcblk0"
CONFIG_LOG_BUF_SHIFT=14
CONFIG_PHYS_OFFSET=0x60000000
# CONFIG_EXPERT is not set
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_check_config_accepts_a_config_meeting_everything(tmp_path):
    config = write(tmp_path / ".config", GOOD)
    wanted = [
        *REQUIREMENTS,
        'CMDLINE="console=ttyAMA0 root=/dev/mmcblk0"',
        "LOG_BUF_SHIFT=14",
        "PHYS_OFFSET=0x60000000",
        "EXPERT=n",
        "NOT_IN_FILE=n",  # absent means n, as the kernel writes unmet symbols
    ]
    assert kconfig.check_config(config, wanted) == []
    kconfig.verify_config(config, wanted)


def test_check_config_returns_the_unmet_requirements(tmp_path):
    bad = GOOD.replace("CONFIG_MODULE_UNLOAD=y", "# CONFIG_MODULE_UNLOAD is not set")
    bad = bad.replace("CONFIG_SYSCTL=y\n", "")
    config = write(tmp_path / ".config", bad)
    wanted = [*REQUIREMENTS, "LOG_BUF_SHIFT=17", "EXPERT=y"]
    assert kconfig.check_config(config, wanted) == [
        "SYSCTL=y",
        "MODULE_UNLOAD=y",
        "LOG_BUF_SHIFT=17",
        "EXPERT=y",
    ]
    with pytest.raises(FwgenError) as e:
        kconfig.verify_config(config, wanted)
    text = str(e.value)
    assert "SYSCTL=y (found SYSCTL absent)" in text
    assert "MODULE_UNLOAD=y (found MODULE_UNLOAD=n)" in text
    assert "LOG_BUF_SHIFT=17 (found LOG_BUF_SHIFT=14)" in text
    assert "PROC_SYSCTL" not in text


def test_check_config_refuses_bad_input(tmp_path):
    with pytest.raises(FwgenError, match="cannot read kernel config"):
        kconfig.check_config(tmp_path / "missing", REQUIREMENTS)
    config = write(tmp_path / ".config", GOOD)
    for bad in ("CONFIG_SYSCTL=y", "SYSCTL", "=y"):
        with pytest.raises(FwgenError, match="not SYMBOL=value"):
            kconfig.check_config(config, [bad])


def test_fragment_parsing_names_file_and_line(tmp_path):
    fragment = write(tmp_path / "f", "# comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nC=y\n")
    with pytest.raises(FwgenError, match=r"frag:5: 'C=y' is not a kernel config line"):
        kconfig.read_fragment(fragment, "frag")
    write(fragment, '# c\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S="a \\"q\\""\n')
    lines = kconfig.read_fragment(fragment, "frag")
    assert [(a.name, a.value, a.where) for a in lines] == [
        ("A", "y", "frag:2"),
        ("B", "n", "frag:3"),
        ("S", 'a "q"', "frag:4"),
    ]


def test_board_fragment_is_valid_and_does_not_repeat_requirements():
    board = load_board("vexpress")
    for variant in board.kernels.values():
        lines = kconfig.read_fragment(variant.fragment_path(), variant.fragment)
        assert lines, "the fragment sets at least DEVTMPFS_MOUNT"
        required = {kconfig.parse_requirement(r).name for r in variant.requirements}
        assert required.isdisjoint(a.name for a in lines)
        assert set(REQUIREMENTS) <= set(variant.requirements)


# --- A small real Kconfig tree: the resolver with the real kconfiglib, in milliseconds ------

# The shape of the SYSCTL problem in linux: SYSCTL has no prompt and is only selected by
# PROC_SYSCTL, whose prompt needs EXPERT; MODULES uses the bare `modules` attribute (>= 5.x).
MINI_KCONFIG = """\
mainmenu "mini"

config EXPERT
	bool "expert"

config PROC_FS
	bool "proc" if EXPERT
	default y

config SYSCTL
	bool

config PROC_SYSCTL
	bool "proc sysctl" if EXPERT
	depends on PROC_FS
	select SYSCTL
	default y

config HIDDEN_FEATURE
	bool "needs expert" if EXPERT

config MODULES
	bool "modules"
	modules

config MODULE_UNLOAD
	bool "unload"
	depends on MODULES

config DRIVER
	tristate "driver"
	depends on !LEGACY

config LEGACY
	bool "legacy"
	default y

config LIBFOO
	bool

config USES_LIBFOO
	bool "uses libfoo"
	depends on !LEGACY
	select LIBFOO

config DEVTMPFS
	bool "devtmpfs"

config DEVTMPFS_MOUNT
	bool "devtmpfs mount"
	depends on DEVTMPFS

config DEBUG_KERNEL
	bool "kernel debugging"

config PREEMPT_COUNT
	bool

config DEBUG_ATOMIC_SLEEP
	bool "sleep inside atomic section checking"
	select PREEMPT_COUNT
	depends on DEBUG_KERNEL
"""


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    tree = tmp_path / "mini"
    (tree / "arch" / "arm" / "configs").mkdir(parents=True)
    write(tree / "Makefile", "VERSION = 9\nPATCHLEVEL = 9\nSUBLEVEL = 0\nEXTRAVERSION = -t\n")
    write(tree / "Kconfig", MINI_KCONFIG)
    write(tree / "arch" / "arm" / "configs" / "mini_defconfig", "CONFIG_MODULES=y\n")
    return tree


def mini_config(tree: Path, fragment: str | None = None, reqs=(), defconfig="mini_defconfig"):
    path = None
    if fragment is not None:
        path = write(tree / "test.fragment", fragment)
    return kconfig.configure(
        tree,
        defconfig=defconfig,
        fragment=path,
        fragment_label="test.fragment",
        requirements=reqs,
        cross_compile="fwgen-test-no-such-",  # this tree's Kconfig never runs a compiler
    )


def value(result: kconfig.KernelConfig, name: str) -> str:
    return result.kconf.syms[name].str_value


def test_mini_tree_loads_bare_modules_and_leaves_no_trace(mini):
    env, cwd = dict(os.environ), os.getcwd()
    assert kconfig.kernel_version(mini) == "9.9.0-t"
    result = mini_config(mini, reqs=["MODULE_UNLOAD=y"])
    assert result.kconf.modules.name == "MODULES"
    assert value(result, "MODULE_UNLOAD") == "y"
    assert dict(os.environ) == env
    assert os.getcwd() == cwd


def test_mini_requirement_met_through_a_dependency(mini):
    write(mini / "arch/arm/configs/mini_defconfig", "# CONFIG_MODULES is not set\n")
    result = mini_config(mini, reqs=["MODULE_UNLOAD=y"])
    assert value(result, "MODULES") == "y"
    assert result.changes == ["MODULES=y (was n)", "MODULE_UNLOAD=y (was n)"]


def test_mini_requirement_met_through_a_selector(mini):
    write(
        mini / "arch/arm/configs/mini_defconfig",
        "CONFIG_EXPERT=y\n# CONFIG_PROC_SYSCTL is not set\n",
    )
    result = mini_config(mini, reqs=["SYSCTL=y"])
    assert result.changes == ["PROC_SYSCTL=y (was n)"]
    assert "selected by PROC_SYSCTL" in result.explain("SYSCTL")


def test_mini_requirement_met_through_a_prompt_condition(mini):
    result = mini_config(mini, reqs=["HIDDEN_FEATURE=y"])
    assert result.changes == ["EXPERT=y (was n)", "HIDDEN_FEATURE=y (was n)"]


def test_mini_resolver_never_turns_things_off_to_turn_one_on(mini):
    with pytest.raises(FwgenError) as e:
        mini_config(mini, reqs=["DRIVER=y"])
    assert str(e.value).startswith(
        "DRIVER=y cannot be met: LEGACY (Kconfig:34) would have to be turned off (it is y)\n"
        "  path tried: DRIVER (Kconfig:30) depends on !LEGACY (Kconfig:34) -> "
    )
    with pytest.raises(FwgenError) as e:
        mini_config(mini, reqs=["LIBFOO=y"])
    assert "LIBFOO (Kconfig:38) has no prompt and is selected by USES_LIBFOO (Kconfig:41)" in str(
        e.value
    )


def test_mini_fragment_beats_the_resolver(mini):
    with pytest.raises(FwgenError) as e:
        mini_config(mini, "CONFIG_EXPERT=y\n# CONFIG_PROC_FS is not set\n", ["SYSCTL=y"])
    message = str(e.value)
    assert message.startswith(
        "SYSCTL=y cannot be met: PROC_FS (Kconfig:6) is forced to n by the fragment "
        "test.fragment:2 ('# CONFIG_PROC_FS is not set')"
    )
    assert "PROC_SYSCTL (Kconfig:13) depends on PROC_FS (Kconfig:6)" in message


def test_mini_dropped_fragment_lines_are_an_error(mini):
    with pytest.raises(FwgenError) as e:
        mini_config(mini, "# CONFIG_PROC_SYSCTL is not set\nCONFIG_NO_SUCH=y\n")
    message = str(e.value)
    assert "test.fragment:1: '# CONFIG_PROC_SYSCTL is not set' gives y" in message
    assert "needs EXPERT[=n]" in message
    assert "test.fragment:2: 'CONFIG_NO_SUCH=y': this kernel has no symbol NO_SUCH" in message


def test_mini_conflicting_requirements_are_named(mini):
    with pytest.raises(FwgenError, match="meeting PROC_FS=n undoes PROC_SYSCTL=y"):
        mini_config(mini, "CONFIG_EXPERT=y\n", ["PROC_SYSCTL=y", "PROC_FS=n"])


def test_mini_unknown_symbols_and_defconfigs(mini):
    with pytest.raises(FwgenError, match="no symbol SYSCTLL") as e:
        mini_config(mini, reqs=["SYSCTLL=y"])
    assert "did you mean SYSCTL" in str(e.value)
    with pytest.raises(FwgenError, match="no defconfig"):
        mini_config(mini, defconfig="nope_defconfig")
    with pytest.raises(FwgenError, match="no symbol NOPE"):
        mini_config(mini).explain("NOPE")


def test_mini_write_is_complete_and_atomic(mini, tmp_path):
    result = mini_config(mini, "CONFIG_EXPERT=y\n", ["HIDDEN_FEATURE=y"])
    out = tmp_path / "out" / ".config"
    out.parent.mkdir()
    result.write(out)
    result.write_defconfig(tmp_path / "out" / "defconfig")
    text = out.read_text()
    assert "# Linux/arm 9.9.0-t Kernel Configuration" in text
    assert "CONFIG_HIDDEN_FEATURE=y\n" in text and "CONFIG_SYSCTL=y\n" in text
    assert sorted(p.name for p in out.parent.iterdir()) == [".config", "defconfig"]
    assert "CONFIG_HIDDEN_FEATURE=y" in (tmp_path / "out" / "defconfig").read_text()
    assert kconfig.check_config(out, ["HIDDEN_FEATURE=y", "SYSCTL=y"]) == []


def test_mini_cli_from_a_tarball(mini, tmp_path, capsys, cli):
    """The whole command on a tiny 'linux 6.1' tarball: kernel source, recipe, write."""
    write(mini / "Makefile", "VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\nEXTRAVERSION =\n")
    write(
        mini / "arch/arm/configs/vexpress_defconfig",
        "CONFIG_MODULES=y\nCONFIG_DEVTMPFS=y\nCONFIG_DEBUG_KERNEL=y\n",
    )
    tarball = tmp_path / "linux-mini.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(mini, arcname="linux-mini")
    out = tmp_path / "linux.config"
    args = ["config", "vexpress", "--kernel-src", str(tarball), "--cross-compile", "no-such-"]
    assert cli([*args, "--kernel", "6.1", "-o", str(out), "--explain", "SYSCTL"]) == 0
    assert "selected by PROC_SYSCTL (Kconfig:13)" in capsys.readouterr().out
    assert kconfig.check_config(out, [*REQUIREMENTS, "DEVTMPFS_MOUNT=y"]) == []
    assert "CONFIG_DEBUG_ATOMIC_SLEEP=y\n" in out.read_text()
    assert cli([*args, "--kernel", "6.1"]) == 0
    assert "CONFIG_MODULE_UNLOAD=y\n" in capsys.readouterr().out
    assert cli([*args, "--kernel", "4.0"]) == 2
    assert "is linux 6.1.0, but kernel variant 4.0 is linux 4.0" in capsys.readouterr().err


# --- linux 6.1 (Debian's linux-source-6.1) -------------------------------------------------


def _has_cross_compiler() -> bool:
    return shutil.which(f"{CROSS}gcc") is not None


@pytest.fixture(scope="session")
def tree61(linux61_src: Path):
    """The 6.1 Kconfig tree, loaded once; each configure() call resets its values."""
    if not _has_cross_compiler():
        pytest.skip(f"{CROSS}gcc is missing (apt-get install gcc-arm-linux-gnueabi)")
    return kconfig.load_tree(linux61_src)


def variant_config(src: Path, tree, variant: str, **overrides) -> kconfig.KernelConfig:
    kernel = load_board("vexpress").kernel(variant)
    args = {
        "defconfig": kernel.defconfig,
        "fragment": kernel.fragment_path(),
        "fragment_label": kernel.fragment,
        "requirements": kernel.requirements,
        **overrides,
    }
    return kconfig.configure(src, tree=tree, **args)


def assert_board_config(result: kconfig.KernelConfig, tmp_path: Path) -> None:
    config = tmp_path / "linux.config"
    result.write(config)
    lines = set(config.read_text().splitlines())
    for line in ("SYSCTL", "PROC_SYSCTL", "MODULES", "MODULE_UNLOAD", "DEVTMPFS_MOUNT"):
        assert f"CONFIG_{line}=y" in lines
    assert kconfig.check_config(config, REQUIREMENTS) == []
    assert result.changes == []  # vexpress_defconfig already has them: nothing forced


def test_linux61_board_config_meets_the_requirements(linux61_src, tree61, tmp_path):
    assert_board_config(variant_config(linux61_src, tree61, "6.1"), tmp_path)


def test_linux61_cli_writes_config_and_explains_sysctl(linux61_src, tmp_path, capsys, cli):
    if not _has_cross_compiler():
        pytest.skip(f"{CROSS}gcc is missing")
    out = tmp_path / "linux.config"
    args = ["config", "vexpress", "--kernel", "6.1", "--kernel-src", str(linux61_src)]
    assert cli([*args, "--explain", "SYSCTL", "-o", str(out)]) == 0
    explanation = capsys.readouterr().out
    assert explanation.startswith("SYSCTL = y  [bool]")
    assert "selected by PROC_SYSCTL (fs/proc/Kconfig:64)" in explanation
    assert "no prompt" in explanation
    assert kconfig.check_config(out, REQUIREMENTS) == []
    assert "CONFIG_DEVTMPFS_MOUNT=y" in out.read_text()


def test_linux61_cli_exits_2_naming_the_blocking_dependency(
    linux61_src, tmp_path, monkeypatch, capsys, cli
):
    """A board whose fragment turns /proc off (with EXPERT, so the line sticks)."""
    if not _has_cross_compiler():
        pytest.skip(f"{CROSS}gcc is missing")
    data = tmp_path / "data"
    (data / "board" / "vexpress").mkdir(parents=True)
    recipe = re.sub(r'(?m)^fragment = ".*"$', 'fragment = "linux.fragment"', anywhere_recipe())
    (data / "board" / "vexpress" / "board.toml").write_text(recipe)
    write(
        data / "board" / "vexpress" / "linux.fragment",
        "CONFIG_DEVTMPFS_MOUNT=y\nCONFIG_EXPERT=y\n# CONFIG_PROC_FS is not set\n",
    )
    package = paths.br2_external_dir() / "package"
    shutil.copytree(package, data / "br2-external" / "package")  # the recipe's module packages
    monkeypatch.setattr(paths, "data_root", lambda: data)
    out = tmp_path / "linux.config"
    args = ["config", "vexpress", "--kernel", "6.1", "--kernel-src", str(linux61_src)]
    assert cli([*args, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "SYSCTL=y cannot be met: PROC_FS (fs/proc/Kconfig:2) is forced to n" in err
    assert "board/vexpress/linux.fragment:3 ('# CONFIG_PROC_FS is not set')" in err
    assert "PROC_SYSCTL (fs/proc/Kconfig:64) depends on PROC_FS (fs/proc/Kconfig:2)" in err
    assert not out.exists()


def test_linux61_fragment_turning_proc_sysctl_off_is_refused(linux61_src, tree61, tmp_path):
    # With EXPERT the line would stick, and the requirement cannot be met: the fragment wins
    # over the resolver, and the error names both.
    fragment = write(tmp_path / "f", "CONFIG_EXPERT=y\n# CONFIG_PROC_SYSCTL is not set\n")
    with pytest.raises(FwgenError) as e:
        variant_config(linux61_src, tree61, "6.1", fragment=fragment, fragment_label="f")
    assert str(e.value).startswith(
        "SYSCTL=y cannot be met: PROC_SYSCTL (fs/proc/Kconfig:64) is forced to n by the "
        "fragment f:2 ('# CONFIG_PROC_SYSCTL is not set')"
    )
    # Without EXPERT the line does not survive olddefconfig: refused too, saying why.
    write(fragment, "# CONFIG_PROC_SYSCTL is not set\n")
    with pytest.raises(FwgenError) as e:
        variant_config(linux61_src, tree61, "6.1", fragment=fragment, fragment_label="f")
    assert "f:1: '# CONFIG_PROC_SYSCTL is not set' gives y" in str(e.value)
    assert "EXPERT[=n]" in str(e.value)


def test_linux61_resolver_turns_requirements_on_through_their_controllers(
    linux61_src, tree61, tmp_path
):
    base = (linux61_src / "arch/arm/configs/vexpress_defconfig").read_text()
    defconfig = write(
        tmp_path / "t_defconfig",
        base
        + "CONFIG_EXPERT=y\n# CONFIG_PROC_FS is not set\n# CONFIG_PROC_SYSCTL is not set\n"
        + "# CONFIG_MODULES is not set\n",
    )
    result = variant_config(linux61_src, tree61, "6.1", defconfig=defconfig)
    assert result.changes == [
        "PROC_FS=y (was n)",
        "PROC_SYSCTL=y (was n)",
        "MODULES=y (was n)",  # the defconfig's MODULE_UNLOAD=y then holds by itself
    ]
    assert_values = {n: value(result, n) for n in ("SYSCTL", "PROC_SYSCTL", "MODULE_UNLOAD")}
    assert assert_values == {"SYSCTL": "y", "PROC_SYSCTL": "y", "MODULE_UNLOAD": "y"}
    # A prompt hidden behind EXPERT: the resolver turns EXPERT on.
    result = variant_config(
        linux61_src, tree61, "6.1", requirements=[*REQUIREMENTS, "SGETMASK_SYSCALL=y"]
    )
    assert result.changes == ["EXPERT=y (was n)", "SGETMASK_SYSCALL=y (was n)"]


def test_linux61_missing_compiler_is_a_clear_error(linux61_src):
    with pytest.raises(FwgenError) as e:
        kconfig.load_tree(linux61_src, cross_compile="fwgen-no-such-")
    assert "runs the C compiler, and 'fwgen-no-such-gcc' is not on PATH" in str(e.value)


def kernel_defconfig(src: Path, build: Path) -> dict[str, str]:
    """The kernel's own `make vexpress_defconfig` in an O= build directory (tree untouched)."""
    for tool in ("make", "gcc", f"{CROSS}gcc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing: cannot run the kernel's own make vexpress_defconfig")
    subprocess.run(
        ["make", "-s", "-C", str(src), f"O={build}", "ARCH=arm", f"CROSS_COMPILE={CROSS}"]
        + ["vexpress_defconfig"],
        check=True,
        capture_output=True,
    )
    return kconfig.read_config_values(build / ".config")


def assert_same_as_kernel(src: Path, tree, tmp_path: Path) -> None:
    ours = tmp_path / "ours.config"
    kconfig.configure(src, defconfig="vexpress_defconfig", tree=tree).write(ours)
    theirs = kernel_defconfig(src, tmp_path / "build")
    mine = kconfig.read_config_values(ours)
    # The C tools write the obsolete DEFCONFIG_LIST (4.0); kconfiglib leaves it out.
    names = (set(theirs) | set(mine)) - {"DEFCONFIG_LIST"}
    differ = {n: (theirs.get(n, "n"), mine.get(n, "n")) for n in sorted(names)}
    differ = {n: v for n, v in differ.items() if v[0] != v[1]}
    assert differ == {}
    assert mine.get("CC_VERSION_TEXT", "") == theirs.get("CC_VERSION_TEXT", "")


def test_linux61_same_result_as_the_kernels_own_make(linux61_src, tree61, tmp_path):
    assert_same_as_kernel(linux61_src, tree61, tmp_path)


# --- linux-4.0 ($FWGEN_TEST_LINUX40_SRC) ----------------------------------------------------


@pytest.fixture(scope="session")
def tree40(linux40_src: Path):
    return kconfig.load_tree(linux40_src)


@pytest.mark.gated
def test_linux40_board_config_meets_the_requirements(linux40_src, tree40, tmp_path):
    result = variant_config(linux40_src, tree40, "4.0")
    assert result.version == "4.0.0"
    assert_board_config(result, tmp_path)
    explanation = result.explain("SYSCTL")
    assert "selected by PROC_SYSCTL (fs/proc/Kconfig:46)" in explanation


@pytest.mark.gated
def test_linux40_loads_without_a_cross_compiler(linux40_src):
    # 4.0's Kconfig never runs the compiler, so a missing one is no reason to refuse.
    tree = kconfig.load_tree(linux40_src, cross_compile="fwgen-no-such-")
    assert tree.syms["SYSCTL"].nodes[0].filename == "init/Kconfig"


@pytest.mark.gated
def test_linux40_blocked_requirement_names_the_dependency(linux40_src, tree40, tmp_path):
    fragment = write(tmp_path / "f", "CONFIG_EXPERT=y\n# CONFIG_PROC_FS is not set\n")
    with pytest.raises(FwgenError) as e:
        variant_config(linux40_src, tree40, "4.0", fragment=fragment, fragment_label="f")
    assert str(e.value).startswith(
        "SYSCTL=y cannot be met: PROC_FS (fs/proc/Kconfig:1) is forced to n by the fragment f:2"
    )


@pytest.mark.gated
def test_linux40_same_result_as_the_kernels_own_make(linux40_src, tree40, tmp_path):
    assert_same_as_kernel(linux40_src, tree40, tmp_path)


@pytest.mark.parametrize(
    "requirement",
    [
        "SYSCTL=y",
        "USB=m",
        "KPROBES=n",
        "LOG_BUF_SHIFT=17",
        "PHYS=0x8000",
        'LOCALVERSION="-a \\"b\\""',
        "CMDLINE=x",
    ],
)
def test_a_requirement_written_as_a_config_line_reads_back_the_same(requirement):
    wanted = kconfig.parse_requirement(requirement)
    read = kconfig.parse_config_line(kconfig.config_line(wanted))
    assert (read.name, read.value) == (wanted.name, wanted.value)
