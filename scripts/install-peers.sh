#!/usr/bin/env bash
# Install the real peers the test suite talks to, from Debian's packages:
# Kamailio (+ presence modules) as PBX/presence server, SIPp, coturn for STUN,
# and the tools the NAT test needs (iproute2, nftables).
# The packages' own services are kept stopped: their stock configs listen on
# every interface; the tests start their own instances on loopback.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

need=()
command -v kamailio >/dev/null || need+=(kamailio)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/presence.so ] || ls /usr/lib/*/kamailio/modules/presence.so >/dev/null 2>&1 || need+=(kamailio-presence-modules)
command -v kamcmd >/dev/null || need+=(kamailio)
command -v sipp >/dev/null || need+=(sip-tester)
command -v turnserver >/dev/null || need+=(coturn)
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v ss >/dev/null || need+=(iproute2)
command -v ps >/dev/null || need+=(procps)

if [ ${#need[@]} -eq 0 ]; then
	echo "install-peers: kamailio, sipp, coturn, iproute2, nftables already installed"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null; then exec sudo -E "$0" "$@"; fi
	echo "install-peers: missing ${need[*]}; run this script as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Keep invoke-rc.d from starting kamailio and coturn with their stock configs.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
if [ ! -e "$POLICY" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$POLICY"
	chmod 755 "$POLICY"
	ADDED_POLICY=1
fi
trap '[ "$ADDED_POLICY" = 1 ] && rm -f "$POLICY"; true' EXIT
mapfile -t pkgs < <(printf '%s\n' "${need[@]}" | sort -u)
echo "install-peers: apt-get install ${pkgs[*]}"
apt-get update -q
apt-get install -y -q --no-install-recommends "${pkgs[@]}"
if [ -d /run/systemd/system ]; then
	systemctl disable --now kamailio coturn 2>/dev/null || true
fi
kamailio -v | head -1
