#!/usr/bin/env bash
# Install the real peers the test suite talks to, from Debian's packages:
#   kamailio, kamailio-presence-modules  PBX: registrar, proxy, presence server
#                                        (kamcmd comes with kamailio)
#   kamailio-tls-modules                 its SIP-over-TLS listener
#   sip-tester                           SIPp, the phones
#   coturn                               STUN server (run STUN-only by the tests)
#   postgresql                           the database sink's server (each test
#                                        runs initdb + postgres of its own)
#   chromium, chromium-driver            headless Chromium and chromedriver, for the
#                                        tests that look at pages in a real browser
#   fonts-dejavu-core                    a font for its screenshots (not pulled in
#                                        without recommends)
#   iproute2, nftables, procps           ip netns / ss, the NAT rule, sysctl
#   systemd                              systemd-analyze verify for the example unit
# The tests start their own instances on loopback (crates/testbed); the
# packages' own services are kept stopped and disabled, because their stock
# configurations listen on every interface.
#
# Idempotent: a second run installs nothing and only makes sure the stock
# services are not running. Runs as root (as on CI); otherwise through sudo
# when there is one.
set -euo pipefail

PKGS=(kamailio kamailio-presence-modules kamailio-tls-modules sip-tester coturn postgresql chromium chromium-driver fonts-dejavu-core iproute2 nftables procps systemd)
SERVICES=(kamailio coturn postgresql)

log() { echo "install-peers: $*"; }

installed() { # package
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for p in "${PKGS[@]}"; do
	installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null; then exec sudo -E "$0" "$@"; fi
	echo "install-peers: missing ${missing[*]}: run this script as root (needs apt-get)" >&2
	exit 1
fi

if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	# Keep invoke-rc.d / deb-systemd-invoke from starting kamailio, coturn and
	# postgresql with their stock configs during the install: a policy-rc.d that says no
	# (only if there is none already; removed again afterwards).
	POLICY=/usr/sbin/policy-rc.d
	ADDED_POLICY=0
	if [ ! -e "$POLICY" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$POLICY"
		chmod 755 "$POLICY"
		ADDED_POLICY=1
	fi
	trap '[ "$ADDED_POLICY" = 1 ] && rm -f "$POLICY"; true' EXIT
	log "apt-get update"
	apt-get update -q
	log "apt-get install ${missing[*]}"
	apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	log "already installed: ${PKGS[*]}"
fi

# The stock services stay disabled, so that no boot starts them: through the
# service manager only (never by stopping processes by name, which could hit
# the tests' own instances). During an install, policy-rc.d kept them from
# starting at all.
if [ "$(id -u)" = 0 ]; then
	for s in "${SERVICES[@]}"; do
		if [ -d /run/systemd/system ]; then
			systemctl disable --now "$s" >/dev/null 2>&1 || true
		elif command -v update-rc.d >/dev/null && [ -e "/etc/init.d/$s" ]; then
			update-rc.d "$s" disable >/dev/null 2>&1 || true
		fi
	done
fi

for p in kamailio kamcmd sipp turnserver psql createdb chromium chromedriver ip ss nft sysctl; do
	PATH="$PATH:/usr/sbin:/sbin" command -v "$p" >/dev/null || {
		echo "install-peers: $p still missing after the install" >&2
		exit 1
	}
done
# Debian keeps the server's programs out of PATH, one directory per version
ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/postgres /usr/lib/postgresql/*/bin/pg_isready >/dev/null 2>&1 || {
	echo "install-peers: PostgreSQL's initdb/postgres/pg_isready are missing" >&2
	exit 1
}
ls /usr/lib/*/kamailio/modules/presence_dialoginfo.so >/dev/null 2>&1 || {
	echo "install-peers: Kamailio's presence modules are missing" >&2
	exit 1
}
log "$(PATH="$PATH:/usr/sbin" kamailio -v | head -1 | xargs); $(sipp -v 2>&1 | grep -m1 -o 'SIPp v[^ ]*' || true)"
# chromium's launcher script may complain on stderr about /dev/shm: only the version line
log "$(chromium --version 2>/dev/null | head -1 | xargs); $(chromedriver --version 2>/dev/null | grep -m1 -o 'ChromeDriver [0-9.]*' || true)"
