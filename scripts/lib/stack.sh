# Shared settings for the local dev/test stack. Sourced by dev-up, dev-down, test, demo, bench.
# Every value can be overridden from the environment.
BT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${BT_STACK_DIR:=$BT_ROOT/.stack}"                    # data, logs, pid files
: "${BT_CACHE_DIR:=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/binlog-tailer}"  # jars, root file systems
: "${BT_SERVERS:=mariadb mysql mariadb11}"              # source servers to start (and test)
: "${BT_SERVER:=${BT_SERVERS%% *}}"                     # the one demo, bench and examples use
: "${BT_MARIADB_PORT:=13306}"                           # MariaDB 10.11 (Debian 12's package)
: "${BT_MYSQL_PORT:=13307}"                             # MySQL 9.x (Debian unstable root fs)
: "${BT_MYSQL_SUITE:=sid}"                              # the Debian suite MySQL comes from
: "${BT_MARIADB11_PORT:=13308}"                         # MariaDB 11.x (Debian 13's)
: "${BT_MARIADB11_SUITE:=trixie}"                       # the Debian suite it comes from
: "${BT_KAFKA_PORT:=19092}"
: "${BT_KAFKA_CONTROLLER_PORT:=19093}"
: "${BT_KAFKA_SSL_PORT:=19094}"                         # TLS listener (advertised as localhost)
: "${BT_KAFKA_SASL_PORT:=19095}"                        # SASL_SSL listener, SCRAM-SHA-512
: "${BT_KAFKA_SASL_USER:=bt_sasl}"
: "${BT_KAFKA_SASL_PASSWORD:=bt_sasl_pw}"
: "${BT_MYSQL_ADMIN_USER:=bt_admin}"
: "${BT_MYSQL_ADMIN_PASSWORD:=bt_admin_pw}"
: "${BT_MYSQL_CDC_USER:=bt_cdc}"
: "${BT_MYSQL_CDC_PASSWORD:=bt_cdc_pw}"
: "${BT_KAFKA_HEAP:=-Xms256m -Xmx1g}"
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$BT_ROOT/scripts/kafka/pom.xml")
MARIADB_DIR=$BT_STACK_DIR/mariadb
MYSQL_DIR=$BT_STACK_DIR/mysql
MYSQL_ROOTFS=$BT_CACHE_DIR/rootfs/mysql-$BT_MYSQL_SUITE
MARIADB11_DIR=$BT_STACK_DIR/mariadb11
MARIADB11_ROOTFS=$BT_CACHE_DIR/rootfs/mariadb-$BT_MARIADB11_SUITE
KAFKA_DIR=$BT_STACK_DIR/kafka
KAFKA_JARS=$BT_CACHE_DIR/kafka-$KAFKA_VERSION
TLS_DIR=$BT_STACK_DIR/tls                               # test CA and server certificate
export BT_ROOT BT_STACK_DIR BT_CACHE_DIR BT_SERVERS BT_SERVER BT_MARIADB_PORT BT_MYSQL_PORT \
  BT_MARIADB11_PORT BT_KAFKA_PORT BT_KAFKA_SSL_PORT BT_KAFKA_SASL_PORT BT_KAFKA_SASL_USER \
  BT_KAFKA_SASL_PASSWORD BT_KAFKA_CONTROLLER_PORT BT_MYSQL_ADMIN_USER BT_MYSQL_ADMIN_PASSWORD BT_MYSQL_CDC_USER \
  BT_MYSQL_CDC_PASSWORD

say() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# server_port NAME: the port of a source server of the stack (mariadb, mysql).
server_port() {
  case $1 in
    mariadb) echo "$BT_MARIADB_PORT" ;;
    mysql) echo "$BT_MYSQL_PORT" ;;
    mariadb11) echo "$BT_MARIADB11_PORT" ;;
    *) die "unknown server '$1' in BT_SERVERS (known: mariadb mysql mariadb11)" ;;
  esac
}

# load_server_env: export the connection settings dev-up wrote for BT_SERVER.
load_server_env() {
  local file="$BT_STACK_DIR/$BT_SERVER.env"
  [ -f "$file" ] || die "no settings for server '$BT_SERVER' in $BT_STACK_DIR (BT_SERVERS is '$BT_SERVERS')"
  set -a
  # shellcheck disable=SC1090
  . "$file"
  set +a
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive FILE: true when FILE names a running process.
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.2 s until it succeeds.
wait_for() {
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

# stop_pidfile NAME PIDFILE PORT: stop the process PIDFILE names (TERM, then KILL after 60 s).
stop_pidfile() {
  local name=$1 pidfile=$2 port=$3
  if ! pid_alive "$pidfile"; then
    say "$name not running"
    rm -f "$pidfile"
    return
  fi
  local pid
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  if ! wait_for 60 "$name" eval "! kill -0 $pid 2>/dev/null"; then
    say "$name did not stop within 60 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 10 "$name" eval "! kill -0 $pid 2>/dev/null" || die "could not stop $name (pid $pid)"
  fi
  wait_for 10 "$name port" eval "! port_open $port" || true
  rm -f "$pidfile"
  say "$name stopped"
}
