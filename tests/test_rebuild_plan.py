"""The rebuild planner: the smallest correct set of Buildroot targets for what changed."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fwgen import rebuild
from fwgen.buildstate import State
from fwgen.rebuild import Inputs, Plan

# Every kernel-module package is rebuilt with its kernel (Buildroot would not rebuild them).
PACKAGES = ("usermodehelper-demo", "myevent-source")  # the recipe's module_packages
MODULES = ("usermodehelper-demo-dirclean", "myevent-source-dirclean")
KERNEL_AND_MODULES = ("linux-dirclean", *MODULES)

BASE = Inputs(
    buildroot="2025.02.16 " + "b" * 64,
    kernel="4.0 " + "k" * 64,
    defconfig={
        "BR2_arm": "y",
        "BR2_cortex_a9": "y",
        "BR2_GCC_VERSION_12_X": "y",
        "BR2_PACKAGE_HOST_LINUX_HEADERS_CUSTOM_4_0": "y",
        "BR2_DL_DIR": '"/cache/buildroot-dl"',
        "BR2_JLEVEL": "0",
        "BR2_LINUX_KERNEL": "y",
        "BR2_LINUX_KERNEL_CUSTOM_VERSION_VALUE": '"4.0"',
        "BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE": '"/o/fwgen/linux.config"',
        "BR2_LINUX_KERNEL_INTREE_DTS_NAME": '"vexpress-v2p-ca9"',
        "BR2_TARGET_GENERIC_GETTY_PORT": '"ttyAMA0"',
        "BR2_TARGET_ROOTFS_EXT2_SIZE": '"64M"',
        "BR2_PACKAGE_USERMODEHELPER_DEMO": "y",
    },
    kernel_config="c" * 64,
    series={"0001-a.patch": "1" * 64, "0002-b.patch": "2" * 64},
    module="m" * 64,
    overlays={"usr/bin/x": "0o755 " + "x" * 64, "etc/init.d/S30myevent": "0o755 " + "s" * 64},
    board_files="{}",
)


def _plan(new: Inputs, *, old: Inputs = BASE, complete: bool = True, **kw) -> Plan:
    return rebuild.plan(State(old, complete), new, module_packages=PACKAGES, **kw)


def _with(**changes) -> Inputs:
    return dataclasses.replace(BASE, **changes)


def _defconfig(**changes) -> Inputs:
    values = dict(BASE.defconfig)
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return _with(defconfig=values)


def test_first_build():
    plan = rebuild.plan(None, BASE, module_packages=PACKAGES)
    assert plan.fresh and not plan.full_clean and plan.invalidate == ()
    assert plan.describe()[-1].startswith("=> make")


def test_an_unrecorded_build_directory_is_rebuilt_from_scratch():
    plan = rebuild.plan(None, BASE, module_packages=PACKAGES, output_exists=True)
    assert plan.full_clean
    assert "no record" in plan.reasons[0]


def test_clean_flag_wins():
    plan = _plan(BASE, clean=True)
    assert plan.full_clean and plan.reasons == ("--clean: rebuilding everything",)


def test_nothing_changed_is_unchanged():
    plan = _plan(BASE)
    assert plan == Plan(reasons=("no input changed since the last build",), unchanged=True)
    assert not _plan(BASE, complete=False).unchanged


def test_an_unfinished_build_is_resumed_with_a_plain_make():
    plan = _plan(BASE, complete=False)
    assert plan.resume and not plan.full_clean and plan.invalidate == ()
    assert "resuming" in plan.reasons[0]


def test_changed_series_dircleans_the_kernel_and_the_module():
    series = {"0001-a.patch": "1" * 64, "0002-b.patch": "3" * 64, "0003-c.patch": "4" * 64}
    plan = _plan(_with(series=series))
    assert plan.invalidate == KERNEL_AND_MODULES
    assert not plan.full_clean
    assert "added 0003-c.patch; changed 0002-b.patch" in plan.reasons[0]


def test_a_changed_series_goes_into_the_kept_kernel_tree_when_its_old_series_is_at_hand():
    series = {"0001-a.patch": "1" * 64, "0002-b.patch": "3" * 64}
    plan = _plan(_with(series=series), patched_series=dict(BASE.series))
    assert plan.update_kernel_series
    assert plan.invalidate == ("linux-clean-for-rebuild", *MODULES)
    assert "brought to the new series in place" in plan.reasons[0]
    assert plan.describe()[-1].startswith("=> new series into the kernel tree, linux-clean-")


@pytest.mark.parametrize(
    "patched",
    [
        None,  # no patched tree, or no copy of its series
        {"0001-a.patch": "1" * 64},  # the copy is not the recorded series
        dict(reversed(list(BASE.series.items()))),
    ],
)
def test_without_the_recorded_series_at_hand_the_kernel_is_dircleaned(patched):
    plan = _plan(_with(series={}), patched_series=patched)
    assert not plan.update_kernel_series
    assert plan.invalidate == KERNEL_AND_MODULES


def test_a_kernel_option_changed_with_the_series_dircleans_without_updating():
    new = dataclasses.replace(
        _defconfig(BR2_LINUX_KERNEL_INTREE_DTS_NAME='"vexpress-v2p-ca15"'), series={}
    )
    plan = _plan(new, patched_series=dict(BASE.series))
    assert not plan.update_kernel_series
    assert plan.invalidate == KERNEL_AND_MODULES
    assert not any("in place" in reason for reason in plan.reasons)


def test_a_tree_left_between_two_series_is_dircleaned_even_for_the_old_series():
    plan = _plan(BASE, old=_with(series=None), complete=False, patched_series=dict(BASE.series))
    assert not plan.update_kernel_series
    assert plan.invalidate == KERNEL_AND_MODULES
    assert "left between two series by an interrupted run" in " ".join(plan.reasons)


def test_a_reordered_series_counts_as_a_change():
    reordered = dict(reversed(list(BASE.series.items())))
    plan = _plan(_with(series=reordered))
    assert plan.invalidate == KERNEL_AND_MODULES
    assert "reordered" in plan.reasons[0]


def _reconfigure(config: str, plan: rebuild.Plan | None = None, configured: bool = True):
    old = State(BASE, complete=True)
    return rebuild.reconfigure_kernel(
        old, config, plan or _plan(BASE), kernel_configured=configured, module_packages=PACKAGES
    )


def test_changed_kernel_config_reconfigures_the_kernel_only():
    step = _reconfigure("d" * 64)
    assert step.invalidate == (
        "linux-clean-for-reconfigure",
        *MODULES,
    )
    assert "kernel .config changed" in step.reasons[0]


def test_unchanged_kernel_config_needs_nothing():
    step = _reconfigure(BASE.kernel_config)
    assert step.invalidate == () and step.reasons == ("kernel .config unchanged",)


def test_series_and_config_change_together_need_only_the_dirclean():
    plan = _plan(_with(series={}))
    assert plan.invalidate == KERNEL_AND_MODULES
    assert _reconfigure("d" * 64, plan).invalidate == ()


def test_a_kernel_not_configured_yet_takes_the_new_config_as_it_is():
    assert _reconfigure("d" * 64, configured=False).invalidate == ()
    fresh = rebuild.plan(None, BASE, module_packages=PACKAGES)
    assert fresh.fresh and _reconfigure("d" * 64, fresh).invalidate == ()


def test_a_kernel_config_change_alone_is_not_decided_by_the_first_plan():
    # plan() runs before the kconfig stage can (it needs Buildroot's toolchain).
    assert _plan(_with(kernel_config="d" * 64)).invalidate == ()


def test_changed_module_dircleans_only_the_module():
    plan = _plan(_with(module="n" * 64))
    assert plan.invalidate == MODULES


def test_overlay_changes_need_a_plain_make():
    overlays = {**BASE.overlays, "usr/bin/x": "0o755 " + "y" * 64, "usr/bin/new": "0o644 z"}
    plan = _plan(_with(overlays=overlays))
    assert plan.invalidate == () and plan.remove_from_target == () and not plan.full_clean
    assert "2 added or changed (usr/bin/new, usr/bin/x)" in plan.reasons[0]


def test_removed_overlay_files_are_removed_from_target():
    overlays = {"usr/bin/x": BASE.overlays["usr/bin/x"]}
    plan = _plan(_with(overlays=overlays))
    assert plan.remove_from_target == ("etc/init.d/S30myevent",)
    assert plan.describe()[-1] == "=> remove 1 file(s) from target/, then make"


def test_a_removed_overlay_file_a_package_installed_reinstalls_that_package():
    overlays = {"usr/bin/x": BASE.overlays["usr/bin/x"]}
    owners = {"etc/init.d/S30myevent": "initscripts"}
    plan = _plan(_with(overlays=overlays), package_files=owners)
    assert plan.remove_from_target == ()
    assert plan.invalidate == ("initscripts-clean-for-reinstall",)


def test_board_files_need_a_plain_make():
    plan = _plan(_with(board_files='{"post-image.sh": "new"}'))
    assert plan.invalidate == () and not plan.full_clean
    assert "post-image" in plan.reasons[0]


@pytest.mark.parametrize(
    "changes",
    [
        {"buildroot": "2025.02.17 " + "b" * 64},
        {"buildroot": "2025.02.16 " + "e" * 64},
        {"kernel": "4.0 " + "q" * 64},
    ],
)
def test_buildroot_or_kernel_tarball_changes_rebuild_everything(changes):
    plan = _plan(_with(**changes))
    assert plan.full_clean
    assert plan.describe()[-1] == "=> full rebuild: make clean, then make"


@pytest.mark.parametrize(
    "changes",
    [
        {"BR2_GCC_VERSION_12_X": None, "BR2_GCC_VERSION_13_X": "y"},
        {"BR2_cortex_a9": None, "BR2_cortex_a7": "y"},
        {"BR2_ARM_ENABLE_NEON": "y"},
        {"BR2_PACKAGE_HOST_LINUX_HEADERS_CUSTOM_4_0": None},
        {"BR2_CCACHE": "y"},
        {"BR2_PACKAGE_USERMODEHELPER_DEMO": None},  # a package removed
        {"BR2_PACKAGE_BUSYBOX_SHOW_OTHERS": "n"},  # an existing package option changed
        {"BR2_LINUX_KERNEL": None},
        {"BR2_SOMETHING_NEW": "y"},  # unknown: be safe
    ],
)
def test_toolchain_architecture_and_package_removals_rebuild_everything(changes):
    plan = _plan(_defconfig(**changes))
    assert plan.full_clean, plan
    assert any("full rebuild" in r for r in plan.reasons)


@pytest.mark.parametrize(
    "changes",
    [
        {"BR2_DL_DIR": '"/elsewhere"'},
        {"BR2_JLEVEL": "3"},
        {"BR2_PRIMARY_SITE": '"http://mirror"'},
        {"BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE": '"/other/linux.config"'},
    ],
)
def test_download_settings_and_paths_change_nothing(changes):
    """Found by the full-build tier: a mirror on another port made a complete build run
    Buildroot's make again; such a change alone leaves the build up to date."""
    plan = _plan(_defconfig(**changes))
    assert not plan.full_clean and plan.invalidate == ()
    assert "changes nothing" in plan.reasons[0]
    assert plan.unchanged
    assert plan.reasons[-1] == (
        "no input changed since the last build but the settings above, which change nothing "
        "that is built"
    )
    assert not _plan(_defconfig(**changes), complete=False).unchanged


def test_a_setting_that_changes_nothing_does_not_hide_one_that_does():
    plan = _plan(_defconfig(BR2_JLEVEL="3", BR2_TARGET_GENERIC_GETTY_PORT='"ttyS0"'))
    assert not plan.unchanged


@pytest.mark.parametrize(
    "changes",
    [
        {"BR2_TARGET_GENERIC_GETTY_PORT": '"ttyS0"'},
        {"BR2_TARGET_ROOTFS_EXT2_SIZE": '"128M"'},
        {"BR2_ROOTFS_POST_IMAGE_SCRIPT_ARGS": '"-c x"'},
        {"BR2_PACKAGE_STRACE": "y"},  # a newly enabled package
    ],
)
def test_system_rootfs_options_and_new_packages_need_a_plain_make(changes):
    plan = _plan(_defconfig(**changes))
    assert not plan.full_clean and plan.invalidate == ()
    assert "applied by make" in plan.reasons[0]


def test_kernel_options_dirclean_the_kernel():
    plan = _plan(_defconfig(BR2_LINUX_KERNEL_INTREE_DTS_NAME='"vexpress-v2p-ca15"'))
    assert plan.invalidate == KERNEL_AND_MODULES


def test_a_full_rebuild_reason_hides_the_smaller_steps():
    plan = _plan(_with(buildroot="2025.02.17 " + "b" * 64, module="n" * 64))
    assert plan.full_clean and plan.invalidate == ()


def test_classify():
    assert rebuild.classify("BR2_JLEVEL", "0", "2") == "none"
    assert rebuild.classify("BR2_TARGET_ROOTFS_EXT2_SIZE", '"64M"', '"128M"') == "make"
    assert rebuild.classify("BR2_LINUX_KERNEL_ZIMAGE", "y", None) == "kernel"
    assert rebuild.classify("BR2_LINUX_KERNEL_CUSTOM_VERSION_VALUE", '"4.0"', '"4.1"') == "full"
    assert rebuild.classify("BR2_PACKAGE_FOO", None, "y") == "make"
    assert rebuild.classify("BR2_PACKAGE_FOO", "y", None) == "full"


def test_state_round_trip(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps(State(BASE, complete=False).to_json()))
    loaded = rebuild.load_state(path)
    assert loaded == State(BASE, complete=False)
    # The series order survives the round trip.
    assert list(loaded.inputs.series) == ["0001-a.patch", "0002-b.patch"]
    between = State(_with(series=None), complete=False)
    path.write_text(json.dumps(between.to_json()))
    assert rebuild.load_state(path) == between


@pytest.mark.parametrize("text", ["", "{", "[]", '{"version": 99}', '{"version": 1}'])
def test_unreadable_state_is_no_state(tmp_path, text):
    path = tmp_path / "state.json"
    path.write_text(text)
    assert rebuild.load_state(path) is None
    assert rebuild.load_state(tmp_path / "missing.json") is None
