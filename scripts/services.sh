#!/usr/bin/env bash
# Makes sure the servers the tests need run on loopback, starting them — and installing them from
# Debian's packages when absent — as needed. Idempotent: safe to run again and by hand.
#
#   bash scripts/services.sh            # Redis (>= 7) and PostgreSQL (needed by every test run)
#   bash scripts/services.sh --peers    # also MariaDB and the packages some tests drive as real
#                                       # peers: docker-registry, prometheus, alertmanager, chromium
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    apt_updated=1
  fi
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

wait_for() { # wait_for <what> <command...>
  local what=$1; shift
  for _ in $(seq 1 50); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "$what did not come up"; return 1
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    local version
    version=$(redis-cli -h 127.0.0.1 -p 6379 info server | sed -n 's/^redis_version:\([0-9]*\).*/\1/p' | tr -d '\r')
    if [ "${version:-0}" -lt 7 ]; then log "Redis on 127.0.0.1:6379 is version $version; version 7 or newer is needed"; exit 1; fi
    log "Redis $version is running on 127.0.0.1:6379"
    return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  log "starting Redis on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'
}

ensure_postgres() {
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    log "PostgreSQL is running on 127.0.0.1:5432"
  else
    command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
    if [ -z "$version" ]; then log "no PostgreSQL cluster found under /etc/postgresql"; exit 1; fi
    # Trust auth on loopback for the test user, as on the developers' machines.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
      as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432 -q
  fi
  local user
  user=$(id -un)
  if ! psql -h 127.0.0.1 -U "$user" -d postgres -Atc 'select 1' >/dev/null 2>&1; then
    as_root su postgres -c "psql -qc \"CREATE ROLE \\\"$user\\\" SUPERUSER LOGIN\"" || true
  fi
  for db in test "$user"; do
    if ! psql -h 127.0.0.1 -U "$user" -d postgres -Atc "select 1 from pg_database where datname='$db'" | grep -q 1; then
      psql -h 127.0.0.1 -U "$user" -d postgres -qc "CREATE DATABASE \"$db\""
    fi
  done
}

ensure_mariadb() {
  if mysqladmin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
    log "MariaDB is running on 127.0.0.1:3306"
    return
  fi
  command -v mariadbd >/dev/null || apt_install mariadb-server
  log "starting MariaDB"
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql || true
  wait_for MariaDB mysqladmin -h 127.0.0.1 -u root ping
  mysql -h 127.0.0.1 -u root -e 'CREATE DATABASE IF NOT EXISTS test' || true
}

ensure_peers() {
  local missing=()
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  # The Debian packages start their own daemons on the default ports; the tests start their
  # own instances on free ports, so stop the packaged ones if they were started.
  for unit in prometheus prometheus-alertmanager docker-registry prometheus-node-exporter; do
    pkill -f "^/usr/bin/$unit" 2>/dev/null || true
  done
  log "peers available: docker-registry, prometheus, prometheus-alertmanager, chromium"
}

ensure_redis
ensure_postgres
if [ "${1:-}" = "--peers" ]; then ensure_mariadb; ensure_peers; fi
