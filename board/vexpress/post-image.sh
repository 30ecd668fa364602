#!/usr/bin/env bash
# fwgen's post-image script for vexpress (BR2_ROOTFS_POST_IMAGE_SCRIPT). Buildroot runs it
# from its top directory after the root filesystem images are made, as
#
#   post-image.sh <BINARIES_DIR> [BR2_ROOTFS_POST_IMAGE_SCRIPT_ARGS...]
#
# with these options (fwgen renders them from the board recipe):
#   -c FILE     genimage configuration (required): makes sdcard.img, and sdcard.img.bmap
#   -k FILE     kernel image name in BINARIES_DIR (default zImage)
#   -d FILE     device tree blob name in BINARIES_DIR (required)
#   -M MACHINE  QEMU machine (default vexpress-a9)
#   -m SIZE     QEMU memory (default 256M)
#   -q PROGRAM  QEMU binary (default qemu-system-arm)
#   -a TEXT     kernel command line
#   -x ARGS     further QEMU arguments (split on blanks)
# It writes BINARIES_DIR/start-qemu.sh (Buildroot's own board/qemu/post-image.sh does that only
# for its in-tree qemu_* defconfigs).
set -euo pipefail

die() {
	echo "post-image.sh: $*" >&2
	exit 1
}

[ $# -ge 1 ] || die "usage: post-image.sh BINARIES_DIR -c GENIMAGE_CFG -d DTB [options]"
images="$1"
shift

genimage_cfg=""
kernel="zImage"
dtb=""
machine="vexpress-a9"
memory="256M"
qemu="qemu-system-arm"
append=""
extra=""
while getopts "c:k:d:M:m:q:a:x:" opt; do
	case "${opt}" in
	c) genimage_cfg="${OPTARG}" ;;
	k) kernel="${OPTARG}" ;;
	d) dtb="${OPTARG}" ;;
	M) machine="${OPTARG}" ;;
	m) memory="${OPTARG}" ;;
	q) qemu="${OPTARG}" ;;
	a) append="${OPTARG}" ;;
	x) extra="${OPTARG}" ;;
	*) die "unknown option (see the comment at the top of this script)" ;;
	esac
done
[ -n "${genimage_cfg}" ] || die "-c GENIMAGE_CFG is required"
[ -f "${genimage_cfg}" ] || die "${genimage_cfg}: no such genimage configuration"
[ -n "${dtb}" ] || die "-d DTB is required"

# The SD card image (and its .bmap when BR2_PACKAGE_HOST_BMAP_TOOLS=y), with Buildroot's
# own helper, which runs genimage from the host directory.
BINARIES_DIR="${images}" support/scripts/genimage.sh -c "${genimage_cfg}"

card="${images}/sdcard.img"
[ -f "${card}" ] || die "genimage did not write ${card}"
size=$(stat -c %s "${card}")
if [ $((size & (size - 1))) -ne 0 ]; then
	die "${card} is ${size} bytes, not a power of two: QEMU's SD card refuses it" \
		"(make BR2_TARGET_ROOTFS_EXT2_SIZE a power of two)"
fi

if [ ! -f "${card}.bmap" ] || [ "${card}.bmap" -ot "${card}" ]; then
	if command -v bmaptool >/dev/null 2>&1; then
		bmaptool create -o "${card}.bmap" "${card}"
	else
		echo "post-image.sh: warning: no bmaptool (BR2_PACKAGE_HOST_BMAP_TOOLS is off and" \
			"none on PATH): no ${card##*/}.bmap written" >&2
	fi
fi

start="${images}/start-qemu.sh"
{
	echo "#!/bin/sh"
	echo "# Boots the images of this directory in QEMU; arguments are passed on to QEMU."
	echo "# Written by fwgen's board/vexpress/post-image.sh."
	echo 'cd "$(dirname "$0")" || exit 1'
	printf 'exec %s -M %s -m %s' "${qemu}" "${machine}" "${memory}"
	printf ' -kernel %s -dtb %s' "${kernel}" "${dtb}"
	printf ' -drive file=sdcard.img,if=sd,format=raw'
	if [ -n "${append}" ]; then
		printf " -append '%s'" "${append}"
	fi
	if [ -n "${extra}" ]; then
		printf ' %s' "${extra}"
	fi
	printf ' "$@"\n'
} >"${start}.tmp"
chmod 755 "${start}.tmp"
mv "${start}.tmp" "${start}"
echo "post-image.sh: wrote ${card##*/} and ${start##*/}"
