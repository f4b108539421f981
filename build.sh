#!/usr/bin/env bash
# The one entry point on a fresh machine: installs what is missing, then runs build.ps1.
#   ./build.sh -Task Demo    a demo VM on the built-in default (QEMU, the tiny Linux test guest)
#   ./build.sh -Task Test    all tests (xUnit + Pester); ends with 'N passed, N failed'
# Needs the .NET SDK (8 or later) on PATH. As root on Debian/Ubuntu it installs the apt packages
# it needs; elsewhere it says which are missing.
set -euo pipefail
cd "$(dirname "$0")"

need_pkgs=(qemu-system-x86 qemu-utils busybox-static cpio xz-utils zstd kmod)
# The host is compiled ahead of time (NativeAOT), which links with clang and needs zlib's headers.
need_pkgs+=(clang zlib1g-dev)
# The fake Virtualization framework the Apple driver's tests run against (tests/fakes/Virtualization).
need_pkgs+=(libobjc-12-dev libblocksruntime-dev libgnustep-base-dev)
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${need_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "== Installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "Missing packages: ${missing[*]}. Install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

command -v dotnet >/dev/null || { echo "The .NET SDK is not on PATH. Install it (8.0 or later) first." >&2; exit 1; }
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# PowerShell 7.6.10 as a local tool (pinned in .config/dotnet-tools.json) and Pester 5.7.1 from NuGet.
dotnet tool restore >/dev/null
dotnet restore tools/PesterDownload.csproj --nologo -v quiet >/dev/null
exec dotnet pwsh -NoProfile -NonInteractive -File ./build.ps1 "$@"
