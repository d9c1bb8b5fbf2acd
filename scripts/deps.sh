#!/usr/bin/env bash
# Installs what hafw needs on a fresh Debian machine: the tools the lab and `hafw check` run,
# Redis for the job queue, and the npm workspace (built). Idempotent and quiet when done before.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(systemd-container debootstrap keepalived conntrackd conntrack iptables nftables
  openssh-server openssh-client redis-server iproute2 iputils-ping procps ca-certificates sudo
  chromium tcpdump)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "hafw needs: apt-get install -y ${missing[*]} (run as root)" >&2; exit 1; fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # The host must not run these daemons itself: the lab's containers do.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  for s in keepalived conntrackd redis-server ssh; do systemctl disable --now "$s" >/dev/null 2>&1 || true; done
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
npm run -s build >&2
