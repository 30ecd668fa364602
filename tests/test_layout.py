"""Where builds live (fwgen.layout), and every command finding a build under `-o DIR`."""

from __future__ import annotations

import os

import pytest

from fwgen import layout
from fwgen.cli import main
from tests.rootfs import fake_kernel_images


def test_the_two_build_kinds_of_a_board_and_variant(tmp_path):
    br = layout.buildroot(tmp_path / "out", "vexpress", "4.0")
    assert br.output == tmp_path / "out" / "vexpress-4.0" and br.output.is_absolute()
    assert br.state == br.output / "fwgen" / "state.json"
    assert br.kernel_config == br.output / "fwgen" / "linux.config"
    assert br.series_dir("4.0") == br.output / "fwgen" / "global-patch-dir" / "linux" / "4.0"
    assert br.kernel_tree("4.0") == br.output / "build" / "linux-4.0"
    ko = layout.kernel_only(tmp_path / "out", "vexpress", "4.0")
    assert ko.work == tmp_path / "out" / "vexpress-4.0-kernel"
    assert ko.kernel_config == ko.work / "obj" / ".config"
    assert layout.smoke_results(ko.images) == ko.work / "images-smoke"


def test_the_images_of_the_newer_finished_build(tmp_path):
    root = tmp_path / "out"
    assert layout.images_dir(root, "vexpress", "4.0") == root / "vexpress-4.0" / "images"
    kernel_only = fake_kernel_images(root / "vexpress-4.0-kernel" / "images", manifest={})
    assert layout.images_dir(root, "vexpress", "4.0") == kernel_only
    full = fake_kernel_images(root / "vexpress-4.0" / "images", manifest={})
    older = (full / "manifest.json").stat().st_mtime_ns - 10**9
    os.utime(kernel_only / "manifest.json", ns=(older, older))
    assert layout.images_dir(root, "vexpress", "4.0") == full


@pytest.mark.parametrize(
    "command",
    [
        ["smoke", "vexpress"],
        ["run", "vexpress"],
        ["flash", "vexpress", "--device", "card.img"],
        ["release", "vexpress"],
    ],
)
def test_every_command_finds_a_build_under_the_output_given_to_build(
    tmp_path, monkeypatch, capsys, command
):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "-o", "elsewhere"]) == 2
    err = capsys.readouterr().err
    assert "elsewhere/vexpress-4.0/images" in err
