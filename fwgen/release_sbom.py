"""A release's licence information and SBOM: Buildroot's `make legal-info` and
utils/generate-cyclonedx for a Buildroot build, a CycloneDX SBOM from the manifest for a
kernel-only build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fwgen import __version__, brmake, layout, manifest, runner
from fwgen.errors import FwgenError
from fwgen.log import log
from fwgen.manifest import Manifest

CYCLONEDX_SPEC = "1.6"
SPDX_SCHEMA_NAME = f"spdx-{CYCLONEDX_SPEC}.schema.json"
SBOM = "sbom.cdx.json"


def _copy_tree(source: Path, dest: Path, skip: tuple[str, ...] = ()) -> None:
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if rel.parts[0] in skip or path.is_symlink():
            continue
        if path.is_dir():
            (dest / rel).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel)


def buildroot_output(directory: Path, built: Manifest) -> Path | None:
    """The Buildroot output directory the images came from (it holds Buildroot's Makefile)."""
    if built.build != "buildroot":
        return None
    output = layout.build_of(directory)
    return output if (output / "Makefile").is_file() else None


def buildroot_tree(output: Path) -> Path | None:
    """The Buildroot source tree named in the output directory's generated Makefile."""
    match = re.search(r"^MAKEARGS\s*:=\s*-C\s+(\S+)", (output / "Makefile").read_text(), re.M)
    return Path(match.group(1)) if match else None


def _make(output: Path, *targets: str, log_file: Path) -> str:
    argv = ["make", "--no-print-directory", "-s", "-C", str(output), *targets]
    code, stdout = runner.capture(argv, log_file, env=brmake.make_env())
    if code != 0:
        raise FwgenError(
            f"make {' '.join(targets)} in {output} failed (exit status {code}):\n"
            + runner.indent(runner.tail(log_file, 20)),
            f"see {log_file}; the Buildroot build directory must still be complete",
        )
    return stdout


def add_legal_info(stage: Path, output: Path, log_file: Path) -> None:
    """Buildroot's `make legal-info`: manifests and licence texts (sources stay in the build)."""
    legal = output / "legal-info"
    if not (legal / "manifest.csv").is_file():
        log.info("running make legal-info in %s", output)
        _make(output, "legal-info", log_file=log_file)
    _copy_tree(legal, stage / "legal-info", skip=("sources", "host-sources"))


def buildroot_sbom(output: Path, spdx_schema: Path | None, log_file: Path) -> tuple[bytes, str]:
    """Buildroot's own utils/generate-cyclonedx fed by `make show-info`, run offline.

    The script reads the SPDX licence list from $BR2_DL_DIR/cyclonedx/<schema>, downloading it
    when absent; fwgen points BR2_DL_DIR at a temporary directory holding the given schema (or,
    without one, an empty licence list, so licences are named but not matched to SPDX ids).
    """
    tree = buildroot_tree(output)
    script = tree / "utils" / "generate-cyclonedx" if tree else None
    if script is None or not script.is_file():
        raise FwgenError(
            f"cannot find Buildroot's utils/generate-cyclonedx for {output}",
            "the Buildroot tree the build used must still be there",
        )
    info = _make(output, "show-info", log_file=log_file)
    with tempfile.TemporaryDirectory(prefix="fwgen-cyclonedx-") as tmp:
        schema_dir = Path(tmp) / "cyclonedx"
        schema_dir.mkdir()
        if spdx_schema is not None:
            shutil.copyfile(spdx_schema, schema_dir / SPDX_SCHEMA_NAME)
            note = f"SPDX licence ids from {spdx_schema.name}"
        else:
            (schema_dir / SPDX_SCHEMA_NAME).write_text('{"enum": []}\n')
            note = "no SPDX schema given: licences named, not matched to SPDX ids"
        result = subprocess.run(
            [sys.executable, str(script)],
            input=info,
            capture_output=True,
            text=True,
            env={**os.environ, "BR2_DL_DIR": tmp},
            check=False,
        )
    if result.returncode != 0:
        raise FwgenError(
            f"{script} failed (exit status {result.returncode}): {result.stderr.strip()[-800:]}"
        )
    return (json.dumps(json.loads(result.stdout), indent=2, sort_keys=True) + "\n").encode(), note


def _component(kind: str, name: str, version: str, digest: str | None, **extra: Any) -> dict:
    component: dict[str, Any] = {
        "type": kind,
        "bom-ref": f"{name}@{version}" if version else name,
        "name": name,
    }
    if version:
        component["version"] = version
    if digest:
        component["hashes"] = [{"alg": "SHA-256", "content": digest}]
    component.update(extra)
    return component


def _gpl2() -> dict[str, Any]:
    return {"licenses": [{"license": {"id": "GPL-2.0-only"}}]}


def kernel_only_sbom(name: str, built: Manifest, epoch: int) -> bytes:
    """A minimal CycloneDX SBOM written from the manifest (kernel-only builds)."""
    kernel = built.kernel
    patches = [
        _component("file", patch, "", digest, description="kernel patch")
        for patch, digest in sorted(kernel.series.items())
    ]
    components = [
        _component(
            "firmware",
            "linux",
            kernel.version,
            kernel.source.get("sha256"),
            description=f"Linux kernel {kernel.release} built from "
            f"{manifest.source_words(kernel.source)} with the patches below",
            **_gpl2(),
            components=patches,
        )
    ]
    for module in built.modules:
        components.append(
            _component(
                "library",
                module.name,
                "",
                module.sha256 or None,
                description="out-of-tree kernel module built with the kernel",
                **_gpl2(),
            )
        )
    rootfs = built.rootfs
    if rootfs is not None:
        digest = rootfs.get("sha256") or rootfs.get("content")
        components.append(
            _component(
                "application",
                "busybox-rootfs",
                "",
                digest if isinstance(digest, str) and len(digest) == 64 else None,
                description="busybox-based initramfs root filesystem (with fwgen's overlays "
                "and the kernel modules)",
                **_gpl2(),
            )
        )
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": CYCLONEDX_SPEC,
        "version": 1,
        "serialNumber": "urn:uuid:" + _uuid_from(name, built),
        "metadata": {
            "timestamp": _iso(epoch),
            "tools": {
                "components": [{"type": "application", "name": "fwgen", "version": __version__}]
            },
            "component": {"type": "firmware", "bom-ref": name, "name": name},
        },
        "components": components,
        "dependencies": [{"ref": name, "dependsOn": [c["bom-ref"] for c in components]}],
    }
    return (json.dumps(bom, indent=2, sort_keys=True) + "\n").encode()


def _uuid_from(name: str, built: Manifest) -> str:
    """A stable UUID (v4 layout) from the release name and manifest: reproducible SBOMs."""
    record = json.dumps(built.to_record(), sort_keys=True)
    digest = hashlib.sha256((name + record).encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
