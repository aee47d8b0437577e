#!/usr/bin/env bash
# Installs Debian's prometheus and prometheus-alertmanager (prometheus, promtool,
# prometheus-alertmanager) for the tests that run the real programs. A failed install is not
# fatal: those tests then skip, each saying which program is missing.
set -uo pipefail

needed=(prometheus promtool prometheus-alertmanager)
missing=0
for program in "${needed[@]}"; do
    command -v "$program" >/dev/null 2>&1 || missing=1
done
[ "$missing" -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo -n)
    else
        echo "warning: not root and no sudo; the tests against real Prometheus/Alertmanager will skip" >&2
        exit 0
    fi
fi
install() {
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends \
        prometheus prometheus-alertmanager >/tmp/riskmon-apt.log 2>&1
}
if ! install; then
    "${sudo[@]}" apt-get update >>/tmp/riskmon-apt.log 2>&1
    if ! install; then
        echo "warning: could not install prometheus and prometheus-alertmanager (see /tmp/riskmon-apt.log);" \
            "the tests against the real programs will skip" >&2
        tail -5 /tmp/riskmon-apt.log >&2
    fi
fi
exit 0
