"""`fwgen build --dry-run`: what a build would do (inputs, plan, commands, defconfig), with
nothing run.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from fwgen import brinputs, brmake, brprepare, paths, toolchain


def describe(prepared: brprepare.Prepared, notes: Sequence[str] = ()) -> str:
    """What a build would do: inputs, plan and the exact commands, as text."""
    p = prepared
    make = brmake.Make(p.tree_shown, p.output)
    lines = [
        f"fwgen build {p.board.name}, kernel {p.variant_name} (linux {p.variant.version}): "
        "dry run, nothing is changed",
        f"  output directory: {p.output}",
        f"  Buildroot {p.board.buildroot.version}: {p.tree_shown}"
        + ("" if p.tree else " (extracted on the first real run)"),
    ]
    for file, status in p.downloads.items():
        lines.append(f"  {file}: {status}")
    lines.append(f"  kernel tarball for Buildroot: {p.locations.dl_dir / 'linux' / p.variant.file}")
    lines.append(
        f"  Buildroot's global patch dir: {p.locations.patch_dir} (the series of "
        f"{p.variant.patches} and the pin sha256 {p.variant.sha256}, from {p.board.source.name})"
    )
    reconfigure = _dry_run_kernel_config(p)
    lines.append(f"  Buildroot defconfig: {p.layout.defconfig}")
    lines.extend(f"  note: {note}" for note in notes)
    lines.append("plan:")
    lines.extend(f"  {line}" for line in p.plan.describe())
    lines.extend(f"  {line}" for line in reconfigure)
    lines.append("commands:")
    lines.extend(f"  {cmd}" for cmd in commands(prepared, make))
    lines.append("defconfig:")
    lines.extend(f"  {line}" if line else "" for line in p.defconfig_text.splitlines())
    return "\n".join(lines) + "\n"


def _dry_run_kernel_config(p: brprepare.Prepared) -> list[str]:
    """What the kconfig stage would decide, if Buildroot's toolchain and the source are here."""
    where = f"kernel .config {p.locations.kernel_config}"
    if p.plan.full_clean or toolchain.buildroot_toolchain(p.output) is None:
        return [f"{where}: made by the kconfig stage once Buildroot has built its toolchain"]
    if p.kernel_tree is None:
        return [f"{where}: made by the kconfig stage once the kernel source is extracted"]
    text = brprepare.kernel_config_text(p.variant, p.kernel_tree, p.output)
    digest, step = brprepare.kernel_config_step(p, text)
    shown = [f"{where} (sha256 {digest[:12]}): {'; '.join(step.reasons)}"]
    if step.invalidate:
        shown.append(f"=> then make {' '.join(step.invalidate)}")
    return shown


def commands(prepared: brprepare.Prepared, make: brmake.Make) -> list[str]:
    p = prepared
    out = [
        shlex.join(
            make.command(
                "defconfig",
                args=[
                    f"BR2_EXTERNAL={paths.br2_external_dir()}",
                    f"BR2_DEFCONFIG={p.layout.defconfig}",
                ],
            )
        ),
        f"(check: every line of {p.layout.defconfig.name} is in {p.layout.dot_config})",
    ]
    if p.plan.full_clean and brinputs.has_build(p.output):
        out.append(shlex.join(make.command("clean")))
    if p.plan.update_kernel_series:
        out.append(
            f"(new series into {p.kernel_build_dir}: only the files either series touches, "
            f"from {p.layout.series_dir(p.variant.version)} to {p.variant.patches})"
        )
    if not p.plan.full_clean and p.plan.invalidate:
        out.append(shlex.join(make.command(*p.plan.invalidate)))
    for path in p.plan.remove_from_target:
        out.append(shlex.join(["rm", "-f", str(p.layout.target / path)]))
    out.append(
        shlex.join(make.command("show-info"))
        + "  (the package list for progress; the recorded one if the packages are the same)"
    )
    if brprepare.toolchain_built(p):
        out.append("(no make toolchain: the last complete build here built it)")
    else:
        out.append(shlex.join(make.command("toolchain")))
    out.append(
        f"(kconfig stage with {p.layout.host / 'bin'}'s compiler -> {p.locations.kernel_config})"
    )
    out.append(shlex.join(make.command()))
    out.append(f"(check: {p.kernel_build_dir / '.config'} has {', '.join(p.variant.requirements)})")
    out.append(f"(collect: {p.layout.images} + manifest.json + SHA256SUMS)")
    return out
