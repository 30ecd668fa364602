"""fwgen.modules: the kernel-module packages both build paths build, read from their Makefiles."""

from __future__ import annotations

import shutil

import pytest

from fwgen import modules, paths
from fwgen.errors import FwgenError
from tests.manifests import VEXPRESS_MODULE_PACKAGES


@pytest.fixture
def data(tmp_path, monkeypatch):
    """A copy of the real external tree's module packages, to break."""
    root = tmp_path / "data"
    for package in VEXPRESS_MODULE_PACKAGES:
        shutil.copytree(modules.package_dir(package), root / "br2-external" / "package" / package)
    monkeypatch.setattr(paths, "data_root", lambda: root)
    return root


def test_module_names_come_from_the_obj_m_line_of_each_package():
    assert [modules.module_names(p) for p in VEXPRESS_MODULE_PACKAGES] == [
        ["usermodehelper_demo"],
        ["myevent_source"],
    ]


def test_several_modules_on_obj_m_lines(data):
    makefile = modules.source_dir("myevent-source") / "Makefile"
    makefile.write_text("obj-m := one.o two.o\nobj-m += three.o\n")
    assert modules.module_names("myevent-source") == ["one", "two", "three"]


@pytest.mark.parametrize(
    ("text", "found"),
    [("# no modules here\n", "none"), ("obj-m := \n", "none"), ("obj-m := bad-name.o\n", "bad")],
)
def test_a_makefile_without_a_usable_obj_m_line_is_a_clear_error(data, text, found):
    makefile = modules.source_dir("myevent-source") / "Makefile"
    makefile.write_text(text)
    with pytest.raises(FwgenError) as raised:
        modules.module_names("myevent-source")
    assert str(makefile) in raised.value.message and "no usable obj-m line" in raised.value.message
    assert found in raised.value.message
    assert "obj-m := my_module.o" in (raised.value.hint or "")


def test_a_package_without_a_makefile_is_a_clear_error(data):
    (modules.source_dir("myevent-source") / "Makefile").unlink()
    with pytest.raises(FwgenError) as raised:
        modules.module_names("myevent-source")
    assert "cannot read the Kbuild makefile of module package myevent-source" in str(raised.value)
    assert "br2-external/package/myevent-source/src/" in (raised.value.hint or "")


def test_the_content_hash_covers_every_package(data):
    before = modules.content_hash(VEXPRESS_MODULE_PACKAGES)
    assert modules.content_hash(VEXPRESS_MODULE_PACKAGES) == before
    source = modules.source_dir("myevent-source") / "myevent_source.c"
    source.write_text(source.read_text() + "\n")
    changed = modules.content_hash(VEXPRESS_MODULE_PACKAGES)
    assert changed != before
    (modules.package_dir("usermodehelper-demo") / "Config.in").write_text("# changed\n")
    assert modules.content_hash(VEXPRESS_MODULE_PACKAGES) not in (before, changed)
