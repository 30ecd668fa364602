#!/usr/bin/env bash
# FAKE Buildroot (see Makefile): one make goal per call. NOT Buildroot.
#
# Steering (environment):
#   FAKE_BR_FAIL=<package>       fail in that package's Building step
#   FAKE_BR_DROP=<BR2_SYMBOL>    `defconfig` leaves that symbol's line out of .config
#   FAKE_BR_KCONFIG_DROP=<CONFIG_X>  the kernel's final .config lacks that line
#   FAKE_BR_NO_IMAGE=<file>      the build does not write that image
#   FAKE_BR_SLEEP=<seconds>      sleep in every Building step (for Ctrl-C tests)
# `source` fills BR2_DL_DIR (see download_sources).
# Every goal is appended to $O/fake-calls.log.
set -euo pipefail

goal="$1"
out="${O:?the fake Buildroot needs O=}"
mkdir -p "${out}"
echo "${goal}" >>"${out}/fake-calls.log"

config_value() {
	sed -n "s/^$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "${out}/.config" 2>/dev/null | head -n 1
}

kernel_version() {
	local v
	v="$(config_value BR2_LINUX_KERNEL_CUSTOM_VERSION_VALUE)"
	echo "${v:-4.0}"
}

# name:version:type
packages() {
	echo "host-tar:1.35:host"
	echo "host-genimage:18:host"
	echo "busybox:1.37.0:target"
	echo "linux:$(kernel_version):target"
	echo "usermodehelper-demo::target"
	echo "myevent-source::target"
}

stamp_dir() {
	if [ -n "$2" ]; then echo "build/$1-$2"; else echo "build/$1"; fi
}

bold() {
	# Buildroot wraps its >>> lines in `tput smso`/`tput rmso`.
	printf '\033[7m>>> %s\033[27m\n' "$*"
}

show_info() {
	local first=1 name version type
	printf '{'
	while IFS=: read -r name version type; do
		[ ${first} -eq 1 ] || printf ', '
		first=0
		printf '"%s": {"type": "%s", "name": "%s", "virtual": false, "version": "%s", ' \
			"${name}" "${type}" "${name#host-}" "${version}"
		printf '"dl_dir": "%s", "downloads": [{"source": "%s-%s.tar.xz", "uris": []}], ' \
			"${name#host-}" "${name#host-}" "${version:-custom}"
		printf '"stamp_dir": "%s", "dependencies": []}' "$(stamp_dir "${name}" "${version}")"
	done < <(packages)
	printf ', "toolchain": {"type": "target", "name": "toolchain", "virtual": true, '
	printf '"stamp_dir": "build/toolchain"}'
	printf ', "rootfs-ext2": {"type": "rootfs", "image_name": "rootfs.ext2"}}\n'
}

# The kernel as Buildroot makes its build directory: the tarball from BR2_DL_DIR, then the
# series of BR2_GLOBAL_PATCH_DIR/linux/<version> (no host fixups: the fixture has no parser).
extract_and_patch_linux() {
	local dir="$1" version="$2" step="$3" patch_dir p
	if [ "${step}" = Extracting ]; then
		tar -xf "$(config_value BR2_DL_DIR)/linux/linux-${version}.tar.xz" -C "${dir}" \
			--strip-components=1
	elif [ "${step}" = Patching ]; then
		patch_dir="$(config_value BR2_GLOBAL_PATCH_DIR)/linux/${version}"
		if [ -f "${patch_dir}/series" ]; then
			while read -r p; do
				patch -p1 -s -d "${dir}" -i "${patch_dir}/${p}"
			done <"${patch_dir}/series"
		fi
		touch "${dir}/.stamp_patched"
	fi
}

build_package() {
	local name="$1" version="$2" dir step
	dir="${out}/$(stamp_dir "${name}" "${version}")"
	[ -f "${dir}/.stamp_installed" ] && return 0
	mkdir -p "${dir}"
	for step in Extracting Patching Configuring Building "Installing to target"; do
		bold "${name} ${version} ${step}"
		echo "fake: ${name} ${step,,} ..."
		if [ "${name}" = linux ] && [ ! -f "${dir}/.stamp_patched" ]; then
			extract_and_patch_linux "${dir}" "${version}" "${step}"
		fi
		if [ "${step}" = Building ]; then
			if [ -n "${FAKE_BR_SLEEP:-}" ]; then sleep "${FAKE_BR_SLEEP}"; fi
			if [ "${FAKE_BR_FAIL:-}" = "${name}" ]; then
				echo "fake.c:1:1: error: fake failure in ${name}" >&2
				echo "make[1]: *** [package/pkg-generic.mk:273: ${dir}/.stamp_built] Error 1" >&2
				exit 2
			fi
		fi
	done
	if [ "${name}" = linux ]; then
		local config
		config="$(config_value BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE)"
		if [ -n "${FAKE_BR_KCONFIG_DROP:-}" ]; then
			grep -v "^${FAKE_BR_KCONFIG_DROP}=" "${config}" >"${dir}/.config" || true
		else
			cp "${config}" "${dir}/.config"
		fi
		mkdir -p "${dir}/include/config"
		echo "${version}.0" >"${dir}/include/config/kernel.release"
	fi
	if [ "${name}" = usermodehelper-demo ] || [ "${name}" = myevent-source ]; then
		mkdir -p "${out}/target/lib/modules/$(kernel_version).0/updates"
		echo "fake module" >"${out}/target/lib/modules/$(kernel_version).0/updates/${name//-/_}.ko"
	fi
	touch "${dir}/.stamp_configured" "${dir}/.stamp_installed"
}

write_image() {
	local name="$1"
	shift
	[ "${FAKE_BR_NO_IMAGE:-}" = "${name}" ] && return 0
	"$@" >"${out}/images/${name}"
}

build_all() {
	[ -f "${out}/.config" ] || { echo "fake: no .config: run defconfig first" >&2; exit 2; }
	# What a compiler under ccache would see, and one compile in ccache's stats log.
	env | grep -E '^(CCACHE_|FORCE_UNSAFE_CONFIGURE=)' | sort >"${out}/fake-env.log" || true
	if [ -n "${CCACHE_STATSLOG:-}" ]; then
		printf '# fake.c\ndirect_cache_hit\nremote_storage_hit\n' >>"${CCACHE_STATSLOG}"
	fi
	local name version type overlay
	while IFS=: read -r name version type; do
		build_package "${name}" "${version}"
	done < <(packages)
	bold "  Finalizing target directory"
	mkdir -p "${out}/target" "${out}/images"
	for overlay in $(config_value BR2_ROOTFS_OVERLAY); do
		cp -a "${overlay}/." "${out}/target/"
	done
	bold "  Generating root filesystem image rootfs.ext2"
	write_image rootfs.ext2 head -c 1048576 /dev/zero
	write_image zImage echo "fake zImage"
	write_image "$(config_value BR2_LINUX_KERNEL_INTREE_DTS_NAME | sed 's#.*/##').dtb" echo "fake dtb"
	bold "  Executing post-image script fake"
	write_image sdcard.img head -c 1048576 /dev/zero
	write_image sdcard.img.bmap echo "<bmap/>"
	write_image start-qemu.sh echo "#!/bin/sh"
	echo "fake: build done"
}

build_toolchain() {
	[ -f "${out}/.config" ] || { echo "fake: no .config: run defconfig first" >&2; exit 2; }
	build_package host-tar 1.35
	mkdir -p "${out}/host/bin"
	# A stand-in for Buildroot's cross compiler: it only answers --version.
	printf '#!/bin/sh\necho "arm-buildroot-linux-gnueabihf-gcc.br_real (Buildroot fake) 12.5.0"\n' \
		>"${out}/host/bin/arm-buildroot-linux-gnueabihf-gcc"
	chmod +x "${out}/host/bin/arm-buildroot-linux-gnueabihf-gcc"
}

# `make source`: each package's file appears in BR2_DL_DIR, "downloaded" from BR2_PRIMARY_SITE
# when that is a file:// directory holding it, else made up (upstream); with
# BR2_PRIMARY_SITE_ONLY=y a file the site lacks is an error, as in Buildroot.
download_sources() {
	local dl site name version type base file
	dl="$(config_value BR2_DL_DIR)"
	site="$(config_value BR2_PRIMARY_SITE)"
	while IFS=: read -r name version type; do
		base="${name#host-}"
		file="${base}/${base}-${version:-custom}.tar.xz"
		[ -f "${dl}/${file}" ] && continue
		bold "${name} ${version} Downloading"
		mkdir -p "${dl}/${base}"
		if [ -n "${site}" ] && [ -f "${site#file://}/${file}" ]; then
			cp "${site#file://}/${file}" "${dl}/${file}"
		elif [ "$(config_value BR2_PRIMARY_SITE_ONLY)" = y ]; then
			echo "fake: ${file} is not on ${site}" >&2
			exit 2
		else
			echo "fake source of ${name}" >"${dl}/${file}"
		fi
	done < <(packages)
}

case "${goal}" in
toolchain) build_toolchain ;;
source) download_sources ;;
defconfig)
	[ -n "${BR2_DEFCONFIG:-}" ] || { echo "fake: defconfig needs BR2_DEFCONFIG" >&2; exit 2; }
	[ -f "${BR2_EXTERNAL}/external.desc" ] || { echo "fake: BR2_EXTERNAL has no external.desc" >&2; exit 2; }
	if [ -n "${FAKE_BR_DROP:-}" ]; then
		grep -v "^${FAKE_BR_DROP}=" "${BR2_DEFCONFIG}" >"${out}/.config" || true
	else
		cp "${BR2_DEFCONFIG}" "${out}/.config"
	fi
	echo "# configuration written to ${out}/.config"
	;;
show-info) show_info ;;
all) build_all ;;
clean) rm -rf "${out}/build" "${out}/target" "${out}/images" "${out}/host" ;;
*-dirclean)
	pkg="${goal%-dirclean}"
	rm -rf "${out}/build/${pkg}" "${out}/build/${pkg}"-[0-9]*
	;;
*-clean-for-reconfigure | *-clean-for-rebuild | *-clean-for-reinstall)
	pkg="${goal%-clean-for-*}"
	rm -f "${out}/build/${pkg}"/.stamp_installed "${out}/build/${pkg}"-[0-9]*/.stamp_installed
	if [ "${goal}" = "${pkg}-clean-for-reconfigure" ]; then
		rm -f "${out}/build/${pkg}"/.stamp_configured "${out}/build/${pkg}"-[0-9]*/.stamp_configured
	fi
	;;
*)
	echo "fake Buildroot: no rule to make target '${goal}'" >&2
	exit 2
	;;
esac
