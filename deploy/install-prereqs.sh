#!/usr/bin/env bash
# Installs what the embedded default needs from Debian's packages when it is missing:
# Java 17 + Maven (to fetch and run Apache Kafka) and a PostgreSQL server.
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "revstream: installing ${missing[*]} from Debian's packages..."
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "revstream: cannot install ${missing[*]} here: install them with your package manager, then retry." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package starts a cluster of its own; revstream runs its own servers.
if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_ctlcluster >/dev/null 2>&1; then
  for cluster in /etc/postgresql/*/main; do
    [ -d "$cluster" ] && pg_ctlcluster "$(basename "$(dirname "$cluster")")" main stop 2>/dev/null || true
  done
fi
