# Minimal Debian root file systems for servers this machine's release does not ship (MySQL 9.x
# lives only in Debian's unstable suite and needs its newer C library). Sourced by dev-up.
#
# A root file system is built once into the cache directory and reused: the unstable suite
# moves daily, and a cached root keeps the test stack independent of its state on any one day.
# The server then runs from it through the root's own dynamic loader, so it needs no chroot,
# no mounts and no root privileges at run time (building needs root for debootstrap).

# debian_mirror: the Debian archive this machine's apt already uses (BT_DEBIAN_MIRROR wins).
debian_mirror() {
  if [ -n "${BT_DEBIAN_MIRROR:-}" ]; then
    echo "$BT_DEBIAN_MIRROR"
    return
  fi
  local uri
  uri=$(
    {
      # deb822 sources: "URIs: <uri>" lines
      sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null
      # one-line sources: "deb [options] <uri> <suite> ..."
      sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\).*/\2/p' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
    } | grep -E '/debian/?$' | head -n1
  )
  [ -n "$uri" ] || die "cannot find a Debian archive in /etc/apt/sources.list*; set BT_DEBIAN_MIRROR"
  echo "$uri"
}

# build_rootfs DIR SUITE PACKAGE...: a minimal SUITE root in DIR with PACKAGEs installed
# (built again when the list of packages changes).
build_rootfs() {
  local dir=$1 suite=$2; shift 2
  [ "$(cat "$dir/.complete" 2>/dev/null)" = "$suite: $*" ] && return
  [ "$(id -u)" = 0 ] ||
    die "building the $suite root file system for $* needs root (debootstrap); run scripts/dev-up as root once, or set BT_SERVERS to leave it out"
  command -v debootstrap >/dev/null || apt_install debootstrap
  local mirror tmp log
  mirror=$(debian_mirror)
  tmp="$dir.building"
  log="$BT_CACHE_DIR/rootfs-$suite.log"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$dir")"
  say "building a minimal Debian $suite root file system for $* in $dir (about a minute; log: $log)"
  debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$log" 2>&1 ||
    die "debootstrap of Debian $suite failed; see $log"
  cp /etc/resolv.conf "$tmp/etc/resolv.conf" 2>/dev/null || true
  # A mirror that serves a dated snapshot of the archive has Release files past their
  # Valid-Until date; debootstrap does not check it, apt does.
  local apt=(apt-get -o Acquire::Check-Valid-Until=false -o APT::Sandbox::User=root)
  chroot "$tmp" "${apt[@]}" update -qq >>"$log" 2>&1 &&
    DEBIAN_FRONTEND=noninteractive chroot "$tmp" "${apt[@]}" install -y -qq \
      --no-install-recommends "$@" >>"$log" 2>&1 ||
    die "installing $* into the Debian $suite root failed; see $log"
  chroot "$tmp" apt-get clean >>"$log" 2>&1 || true
  rm -rf "$tmp"/var/lib/apt/lists/*
  echo "$suite: $*" >"$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

# in_rootfs DIR PROGRAM ARG...: run DIR/PROGRAM with the root's own loader and libraries.
in_rootfs() {
  local dir=$1 program=$2; shift 2
  local libs="$dir/usr/lib/x86_64-linux-gnu"
  "$libs/ld-linux-x86-64.so.2" --library-path "$libs:$dir/usr/lib" "$dir$program" "$@"
}

# rootfs_wrapper DIR PROGRAM: the path of a script that runs DIR/PROGRAM from the root (made
# once, next to the root).
rootfs_wrapper() {
  local dir=$1 program=$2
  local wrapper="$dir.bin/$(basename "$program")"
  if [ ! -x "$wrapper" ]; then
    mkdir -p "$dir.bin"
    local libs="$dir/usr/lib/x86_64-linux-gnu"
    printf '#!/bin/sh\nexec "%s/ld-linux-x86-64.so.2" --library-path "%s:%s/usr/lib" "%s%s" "$@"\n' \
      "$libs" "$libs" "$dir" "$dir" "$program" >"$wrapper"
    chmod +x "$wrapper"
  fi
  echo "$wrapper"
}
