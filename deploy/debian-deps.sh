#!/usr/bin/env bash
# Installs, on Debian, the independent peers careflow's tests talk to:
# kcat (Kafka client), python3-hl7 (mllp_send), clickhouse-server and
# clickhouse-client (analytics), prometheus (promtool), chromium (the
# console's browser tests and make screenshots). Used by `make test`
# and .ci/run. Without root or apt-get it only says what is missing, and the
# tests that need a missing peer skip (or fail under CAREFLOW_REQUIRE_PEERS).
set -euo pipefail

need=()
command -v kcat >/dev/null 2>&1 || need+=(kcat)
command -v mllp_send >/dev/null 2>&1 || need+=(python3-hl7)
[ -x /usr/sbin/clickhouse-server ] || command -v clickhouse-server >/dev/null 2>&1 || need+=(clickhouse-server)
command -v clickhouse-client >/dev/null 2>&1 || need+=(clickhouse-client)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# The names internal/browser.Path looks for; Debian's package is chromium.
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
  command -v google-chrome >/dev/null 2>&1 || command -v headless-shell >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
else
  echo "careflow: missing test peers: ${need[*]} (apt-get install -y ${need[*]}); their tests will skip" >&2
fi
