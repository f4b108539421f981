#!/usr/bin/env bash
# Builds the MacVm test guest: a Debian kernel booted through PVH and a
# busybox initramfs with the guest agent. See README.md beside this file.
#
# usage: tests/guest/build.sh [OUTDIR]
#   OUTDIR defaults to $MACVM_GUEST_DIR, else <repo>/out/guest.
# Writes OUTDIR/{vmlinux,initramfs.cpio,disk.qcow2,guest.json}. When
# OUTDIR/guest.json already has the current cache key, it only says so.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
outdir=${1:-${MACVM_GUEST_DIR:-$repo/out/guest}}

# The kernel comes from this metapackage's dependency.
KERNEL_META=linux-image-amd64
# Kernel command line written to guest.json (hosts pass it with -append).
CMDLINE="console=ttyS0 quiet panic=-1"
# Modules for the initramfs, by module name; build.sh adds what they depend
# on (from modules.dep). EARLY ones load first, then the agent starts, then
# LATE ones (the slow DRM stack for the bochs framebuffer console).
EARLY_MODULES=(virtio_pci virtio_console virtio_blk virtio_net)
LATE_MODULES=(drm drm_kms_helper ttm drm_ttm_helper drm_vram_helper bochs)
# Files of this folder that go into the guest (or decide what goes in):
# their hashes are part of the cache key.
GUEST_FILES=(build.sh init agent)
# The reference IP agent lives with the other guest-side pieces users bake in.
IP_AGENT=$repo/guest/linux/macvm-ip-agent
DISK_SIZE=64M

die() { echo "build.sh: error: $*" >&2; exit 1; }
say() { echo "build.sh: $*" >&2; }

# need COMMAND DEBIAN-PACKAGE
need() {
    command -v "$1" >/dev/null 2>&1 ||
        die "'$1' is missing: install it with 'apt-get install $2'"
}

json_field() { # FILE KEY -> value of a "KEY":"value" pair (our own flat JSON)
    sed -n 's/.*"'"$2"'" *: *"\([^"]*\)".*/\1/p' "$1" | head -n 1
}

# ---------------------------------------------------------------- versions
need apt-cache apt
need dpkg-query dpkg
need sha256sum coreutils

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

# The system's apt config may disable apt's binary package cache, which makes
# every apt-cache call parse all lists (~1 s). Keep a private one next to the
# output: apt revalidates it against the lists by itself.
apt_cache() {
    apt-cache -o Dir::Cache::pkgcache="$outdir/.apt-pkgcache.bin" "$@"
}

meta_info=$(apt_cache show --no-all-versions "$KERNEL_META" 2>/dev/null) ||
    die "apt knows no package $KERNEL_META: run 'apt-get update' first"
depends=$(sed -n 's/^Depends: *//p' <<<"$meta_info" | head -n 1)
kernel_pkg=$(grep -o 'linux-image-[^ ,|()]*' <<<"$depends" | head -n 1) ||
    die "cannot find the kernel package in '$KERNEL_META' Depends: $depends"
kernel_pkg_version=$(sed -n 's/.*'"$kernel_pkg"' *(= *\([^)]*\)).*/\1/p' <<<"$depends")
if [ -z "$kernel_pkg_version" ]; then
    kernel_pkg_version=$(apt_cache policy "$kernel_pkg" | sed -n 's/^ *Candidate: *//p')
    if [ -z "$kernel_pkg_version" ] || [ "$kernel_pkg_version" = "(none)" ]; then
        die "no installable version of $kernel_pkg: run 'apt-get update' first"
    fi
fi

busybox_version=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' busybox-static 2>/dev/null |
    sed -n 's/^ii *//p') || true
[ -n "$busybox_version" ] || die "busybox-static is not installed: install it with 'apt-get install busybox-static'"

cache_key=$(
    {
        printf 'kernel %s %s\n' "$kernel_pkg" "$kernel_pkg_version"
        printf 'busybox-static %s\n' "$busybox_version"
        (cd "$here" && sha256sum "${GUEST_FILES[@]}")
        sha256sum <"$IP_AGENT"
    } | sha256sum | cut -d ' ' -f 1
)

up_to_date() {
    local f
    [ -f "$outdir/guest.json" ] || return 1
    [ "$(json_field "$outdir/guest.json" cacheKey)" = "$cache_key" ] || return 1
    for f in vmlinux initramfs.cpio disk.qcow2; do [ -s "$outdir/$f" ] || return 1; done
}

if up_to_date; then
    echo "guest up to date: $outdir"
    exit 0
fi

# ------------------------------------------------------------------ build
need flock util-linux
exec 9>"$outdir/.build.lock"
flock 9
if up_to_date; then # another build finished while we waited
    echo "guest up to date: $outdir"
    exit 0
fi

need apt-get apt
need dpkg-deb dpkg
need xz xz-utils
need cpio cpio
need qemu-img qemu-utils
need depmod kmod
busybox_files=$(dpkg-query -L busybox-static)
busybox_bin=$(grep '/bin/busybox$' <<<"$busybox_files" | head -n 1) ||
    die "busybox-static has no /bin/busybox; reinstall it with 'apt-get install --reinstall busybox-static'"

# Leftovers of an interrupted build (we hold the lock, so none is running).
rm -rf "$outdir"/.staging.* 2>/dev/null || true
# Everything, the ~400 MB unpacked kernel package included, goes under one
# staging directory in OUTDIR: removed on exit, or by the next build if this
# one is killed.
stage=$(mktemp -d "$outdir/.staging.XXXXXX")
trap 'rm -rf "$stage"' EXIT
work=$stage/work
mkdir "$work"
start=$SECONDS

say "kernel $kernel_pkg $kernel_pkg_version, busybox-static $busybox_version"

# --- fetch and unpack the kernel package
apt_opts=(-q)
# As root, apt's download sandbox user (_apt) cannot write into our 0700 dir.
[ "$(id -u)" = 0 ] && apt_opts+=(-o APT::Sandbox::User=root)
(cd "$work" && apt-get "${apt_opts[@]}" download "$kernel_pkg=$kernel_pkg_version" >&2)
deb=$(echo "$work"/*.deb)
[ -f "$deb" ] || die "apt-get download $kernel_pkg=$kernel_pkg_version gave no .deb"
dpkg-deb -x "$deb" "$work/pkg"
rm -f "$deb"

bzimage=$(echo "$work"/pkg/boot/vmlinuz-*)
[ -f "$bzimage" ] || die "no /boot/vmlinuz-* in $kernel_pkg"
kernel_release=${bzimage##*/vmlinuz-}
moddir=
for d in "$work/pkg/lib/modules/$kernel_release" "$work/pkg/usr/lib/modules/$kernel_release"; do
    [ -d "$d" ] && moddir=$d
done
[ -n "$moddir" ] || die "no modules directory for $kernel_release in $kernel_pkg"

# --- vmlinux: the ELF kernel inside the bzImage. The bzImage carries it
# compressed (XZ on Debian); find the compressed stream's magic bytes and
# decompress from there. Booting the ELF directly (PVH entry note) skips the
# in-guest decompression, which is slow under TCG.
is_elf() { [ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; }
offsets() { LC_ALL=C grep -obUaP "$1" "$bzimage" | cut -d : -f 1 || true; }
extract_vmlinux() {
    local out=$1 off
    for off in $(offsets '\xFD7zXZ\x00'); do
        { tail -c +$((off + 1)) "$bzimage" || true; } |
            xz -dc --single-stream >"$out" 2>/dev/null || continue
        is_elf "$out" && return 0
    done
    if command -v zstd >/dev/null; then
        for off in $(offsets '\x28\xB5\x2F\xFD'); do
            { tail -c +$((off + 1)) "$bzimage" || true; } | zstd -dcq >"$out" 2>/dev/null || true
            is_elf "$out" && return 0
        done
    fi
    return 1
}
extract_vmlinux "$stage/vmlinux" ||
    die "found no XZ (or zstd) compressed ELF kernel inside ${bzimage##*/} (a zstd one needs 'apt-get install zstd')"

# --- modules: dependency order from modules.dep (Debian ships none: depmod
# makes it). depmod wants BASE/lib/modules/RELEASE.
depbase=$work/depbase
mkdir -p "$depbase/lib/modules" "$depbase/usr/lib"
mv "$moddir" "$depbase/lib/modules/$kernel_release"
ln -s ../../lib/modules "$depbase/usr/lib/modules"
moddir=$depbase/lib/modules/$kernel_release
[ -f "$moddir/modules.dep" ] || depmod -b "$depbase" "$kernel_release"

declare -A mod_path mod_deps mod_state
modname() { local n=${1##*/}; n=${n%%.ko*}; echo "${n//-/_}"; }
while IFS= read -r l; do
    [ -n "$l" ] || continue
    p=${l%%:*}
    n=${p##*/}
    n=${n%%.ko*}
    n=${n//-/_}
    mod_path[$n]=$p
    mod_deps[$n]=${l#*:}
done <"$moddir/modules.dep"

load_order=()
visit() {
    local n=$1 d
    case ${mod_state[$n]:-} in
        finished) return 0 ;;
        active) die "module dependency cycle through $n" ;;
    esac
    mod_state[$n]=active
    for d in ${mod_deps[$n]}; do visit "$(modname "$d")"; done
    mod_state[$n]=finished
    load_order+=("${mod_path[$n]}")
}
want() {
    local n=${1//-/_}
    if [ -n "${mod_path[$n]:-}" ]; then
        visit "$n"
    elif grep -q "/${n}\.ko\|/${n//_/-}\.ko" "$moddir/modules.builtin" 2>/dev/null; then
        say "module $n is built into the kernel"
    else
        die "module $n is neither in modules.dep nor built in ($kernel_pkg)"
    fi
}

root=$work/root
kmods=$root/lib/modules/$kernel_release
mkdir -p "$kmods"
: >"$kmods/macvm.load"
install_group() { # adds the new modules of load_order[from..] to the initramfs
    local i p dst
    for ((i = $1; i < ${#load_order[@]}; i++)); do
        p=${load_order[$i]}
        dst=${p%.xz}
        dst=${dst%.zst}
        dst=${dst%.gz}
        mkdir -p "$kmods/$(dirname "$dst")"
        case $p in
            *.ko) cp "$moddir/$p" "$kmods/$dst" ;;
            *.ko.xz) xz -dc "$moddir/$p" >"$kmods/$dst" ;;
            *.ko.zst) need zstd zstd; zstd -dcq "$moddir/$p" >"$kmods/$dst" ;;
            *.ko.gz) gzip -dc "$moddir/$p" >"$kmods/$dst" ;;
            *) die "unexpected module file $p" ;;
        esac
        echo "$dst" >>"$kmods/macvm.load"
    done
}
for m in "${EARLY_MODULES[@]}"; do want "$m"; done
install_group 0
echo @agent >>"$kmods/macvm.load"
n_early=${#load_order[@]}
for m in "${LATE_MODULES[@]}"; do want "$m"; done
install_group "$n_early"
# A modules.dep for just these modules, so busybox modprobe works in the guest.
for p in "${load_order[@]}"; do
    n=$(modname "$p")
    line="${p}:"
    for d in ${mod_deps[$n]}; do line="$line $d"; done
    echo "$line"
done | sed -E 's/\.ko\.(xz|zst|gz)\b/.ko/g' >"$kmods/modules.dep"
say "modules: $(grep -v '^@' "$kmods/macvm.load" | sed 's#.*/##; s#\.ko$##' | tr '\n' ' ')"

# --- initramfs tree
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,root,etc}
chmod 1777 "$root/tmp"
cp "$busybox_bin" "$root/bin/busybox"
for a in $("$busybox_bin" --list-full); do
    [ -e "$root/$a" ] || [ -L "$root/$a" ] || ln -s /bin/busybox "$root/$a"
done
install -m 0755 "$here/init" "$root/init"
install -m 0755 "$here/agent" "$root/bin/macvm-agent"
install -m 0755 "$IP_AGENT" "$root/bin/macvm-ip-agent"
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
echo macvm-guest >"$root/etc/hostname"
find "$root" -exec touch -h -d @0 {} +

# newc cpio entry for a character device node, so that the kernel can open
# /dev/console for init without us needing mknod (root) at build time.
newc_entry() { # INO NAME MODE RDEVMAJOR RDEVMINOR (no data)
    local namesize=$((${#2} + 1))
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
        "$1" "$3" 0 0 1 0 0 0 0 "$4" "$5" "$namesize" 0
    printf '%s\0' "$2"
    head -c $(((4 - (110 + namesize) % 4) % 4)) /dev/zero
}
(
    cd "$root"
    find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
        cpio -o -H newc -R 0:0 --reproducible --quiet
    newc_entry 1 dev/console $((8#020600)) 5 1
    newc_entry 0 'TRAILER!!!' 0 0 0
) >"$stage/initramfs.cpio"

# --- data disk
qemu-img create -q -f qcow2 "$stage/disk.qcow2" "$DISK_SIZE"

# --- manifest
cat >"$stage/guest.json" <<EOF
{
  "kernel": "vmlinux",
  "initrd": "initramfs.cpio",
  "disk": "disk.qcow2",
  "cmdline": "$CMDLINE",
  "kernelPackage": "$kernel_pkg",
  "kernelVersion": "$kernel_pkg_version",
  "kernelRelease": "$kernel_release",
  "busyboxVersion": "$busybox_version",
  "cacheKey": "$cache_key"
}
EOF

# --- install: guest.json goes last, so an interrupted install leaves no
# guest.json with the new key and the next run builds again.
rm -f "$outdir/guest.json"
for f in vmlinux initramfs.cpio disk.qcow2 guest.json; do
    mv -f "$stage/$f" "$outdir/$f"
done
say "built in $((SECONDS - start)) s: $outdir"
echo "guest built: $outdir"
