#!/usr/bin/env bash
# Install or upgrade opsd as a systemd service. Idempotent: run it again to
# upgrade the binary or the unit; an existing /etc/opsd/opsd.env or opsd.yaml is
# never overwritten.
#
#   sudo deploy/systemd/install.sh [path/to/opsd]
#
# The binary defaults to ./opsd (build it with: CGO_ENABLED=0 go build -trimpath -o opsd ./cmd/opsd).
# Set OPSD_NO_START=1 to install without enabling and starting the service.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binary="${1:-./opsd}"
prefix="${OPSD_PREFIX:-/usr/local/bin}"
confdir=/etc/opsd
unitdir=/etc/systemd/system

if [[ "$(id -u)" -ne 0 ]]; then
	echo "install.sh: run as root (sudo)" >&2
	exit 1
fi
if [[ ! -x "$binary" ]]; then
	echo "install.sh: no executable at $binary; pass the path to the opsd binary" >&2
	exit 1
fi

# A dedicated system user with no login shell and no home of its own; its state
# lives in /var/lib/opsd, which systemd creates (StateDirectory=opsd).
if ! getent group opsd >/dev/null; then
	groupadd --system opsd
fi
if ! id -u opsd >/dev/null 2>&1; then
	useradd --system --gid opsd --no-create-home --home-dir /var/lib/opsd \
		--shell /usr/sbin/nologin --comment "opsd runbook executor" opsd
fi

install -d -o root -g opsd -m 0750 "$confdir"
# Write the new binary beside the old one and rename it over: a running opsd
# keeps its inode, and a half-copied file is never executed.
install -o root -g root -m 0755 "$binary" "$prefix/opsd.new"
mv -f "$prefix/opsd.new" "$prefix/opsd"
install -o root -g root -m 0644 "$here/opsd.service" "$unitdir/opsd.service"

if [[ ! -e "$confdir/opsd.env" ]]; then
	install -o root -g root -m 0600 "$here/opsd.env.example" "$confdir/opsd.env"
	echo "install.sh: wrote $confdir/opsd.env from the example: fill in the secrets" >&2
fi
# Whatever was there before, the secrets file stays root-only.
chown root:root "$confdir/opsd.env"
chmod 0600 "$confdir/opsd.env"
if [[ ! -e "$confdir/opsd.yaml" ]]; then
	printf '# opsd configuration (opsd run --config %s); secrets go in opsd.env\n' "$confdir/opsd.yaml" \
		>"$confdir/opsd.yaml"
fi
chown root:opsd "$confdir/opsd.yaml"
chmod 0640 "$confdir/opsd.yaml"

systemctl daemon-reload
if [[ "${OPSD_NO_START:-0}" != 1 ]]; then
	if systemctl is-active --quiet opsd.service; then
		# An upgrade: pick up the new binary and unit.
		systemctl enable opsd.service
		systemctl restart opsd.service
	else
		systemctl enable --now opsd.service
	fi
	systemctl --no-pager --lines=0 status opsd.service || true
fi
