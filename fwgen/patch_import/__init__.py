"""Import a patch published in a document into a patch Buildroot applies, or refuse.

A patch that went through a web page or a mail client arrives damaged: wrong path prefixes,
hunk counts that do not match their bodies, whitespace changed in context lines. This module
finds the patches (plain, or fenced in markdown), repairs only what is unambiguous (paths,
counts, context whitespace that exactly one place in the tree explains), and checks that the
result applies with the flags Buildroot uses; otherwise it refuses, naming file, hunk and line.
"""

from __future__ import annotations

from fwgen.patch_import.importer import import_patch
from fwgen.patch_import.series import ImportedPatch, ImportedSeries

__all__ = ["ImportedPatch", "ImportedSeries", "import_patch"]
