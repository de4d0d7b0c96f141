#!/usr/bin/env bash
# A local ClickHouse for `make run`: loopback only, data under DATA/clickhouse.
#
#   demo.sh start DATA CONFIG   start it (when installed) and print the
#                               configuration to run careflow with: CONFIG
#                               plus an analytics section, written to
#                               DATA/careflow-demo.yaml; CONFIG unchanged
#                               when ClickHouse is not installed
#   demo.sh stop DATA           stop the server this script started
#
# Ports: 9000 (native, what careflow uses) and 8123 (HTTP). When something
# already listens on 9000 it is taken to be a ClickHouse and used as is.
set -euo pipefail
cmd=${1:-}; data=${2:-data}
dir="$data/clickhouse"
pidfile="$dir/server.pid"
dsn="clickhouse://127.0.0.1:9000/careflow"

stop() {
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}

listening() { (exec 3<>/dev/tcp/127.0.0.1/9000) 2>/dev/null; }

start() {
  local config=$1 bin=""
  for b in clickhouse-server /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
    if command -v "$b" >/dev/null 2>&1; then bin=$(command -v "$b"); break; fi
  done
  if [ -z "$bin" ] && command -v clickhouse >/dev/null 2>&1; then bin="$(command -v clickhouse) server"; fi
  if ! listening; then
    if [ -z "$bin" ]; then
      echo "ClickHouse is not installed (apt-get install -y clickhouse-server): running without analytics" >&2
      echo "$config"
      return
    fi
    mkdir -p "$dir"
    local abs; abs=$(cd "$dir" && pwd)
    cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$abs/server.log</log><errorlog>$abs/server.err.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>9000</tcp_port>
  <http_port>8123</http_port>
  <path>$abs/data/</path>
  <tmp_path>$abs/tmp/</tmp_path>
  <user_files_path>$abs/user_files/</user_files_path>
  <format_schema_path>$abs/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>536870912</mark_cache_size>
</yandex>
XML
    cat >"$dir/users.xml" <<'XML'
<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
XML
    # shellcheck disable=SC2086 # $bin may be "clickhouse server"
    (cd "$dir" && exec $bin --config-file="$abs/config.xml" >>"$abs/server.out" 2>&1) &
    echo $! >"$pidfile"
    for _ in $(seq 1 100); do
      listening && break
      sleep 0.1
    done
    if ! listening; then
      echo "ClickHouse did not start (see $dir/server.err.log): running without analytics" >&2
      stop
      echo "$config"
      return
    fi
    echo "ClickHouse on 127.0.0.1:9000, data in $dir" >&2
  else
    echo "using the ClickHouse already listening on 127.0.0.1:9000" >&2
  fi
  mkdir -p "$data"
  # The code maps the configuration names are relative to it: copy them.
  for f in "$(dirname "$config")"/*.csv; do [ -e "$f" ] && cp "$f" "$data/"; done
  { cat "$config"; printf '\n# Added by deploy/clickhouse/demo.sh for make run.\nanalytics:\n  clickhouse: {dsn: "%s"}\n' "$dsn"; } >"$data/careflow-demo.yaml"
  echo "$data/careflow-demo.yaml"
}

case "$cmd" in
  start) start "${3:?usage: demo.sh start DATA CONFIG}" ;;
  stop) stop ;;
  *) echo "usage: demo.sh start DATA CONFIG | demo.sh stop DATA" >&2; exit 2 ;;
esac
