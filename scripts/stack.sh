#!/usr/bin/env bash
# Local no-Docker stack for fallwatch: Apache Kafka (single node, KRaft) + Redis.
#
# Usage: scripts/stack.sh up|down|status|logs
#        scripts/stack.sh up-secure|down-secure|status-secure [DIR]
#        (a second, secured stack for tests: Kafka SASL_SSL + Redis TLS/AUTH on
#        127.0.0.1:19094/16380, certificates and secrets generated into DIR; see
#        scripts/stack/secure.sh)
#
# Inputs (all optional environment variables):
#   FALLWATCH_KAFKA_VERSION  Kafka version fetched from Maven Central (default 4.1.1)
#   FALLWATCH_CACHE_DIR      jar cache (default ${XDG_CACHE_HOME:-~/.cache}/fallwatch)
#   FALLWATCH_STACK_TIMEOUT  seconds to wait for each service to answer (default 120)
#   FALLWATCH_KAFKA_HEAP     broker JVM heap flags (default "-Xms256m -Xmx768m")
#   FALLWATCH_STACK_{KAFKA,CONTROLLER,REDIS}_PORT  only to run a second stack beside
#                            the main one; tests then need FALLWATCH_KAFKA_BOOTSTRAP and
#                            FALLWATCH_REDIS_URL pointing at it
#   FALLWATCH_STACK_DIR      state, pidfiles and logs (default <repo>/.stack); with the
#                            ports above, a private stack whose broker and Redis a fault
#                            test may stop, pause or kill (streams/devtools/private_stack.py)
# Outputs: Kafka on 127.0.0.1:19092 (controller 127.0.0.1:19093), Redis on
#   127.0.0.1:16379 with AOF; state, pidfiles and logs under <repo>/.stack/.
# Guarantees: idempotent (up when up, down when down are no-ops); binds loopback
#   only; `up` returns only after Kafka answered a real Metadata request listing a
#   registered broker and Redis answered PING; installs redis-server (apt) and
#   fetches the Kafka jars (mvn) on a fresh machine, non-interactively.
# Failure modes: exits non-zero with the log file to read when a service does not
#   answer in time, dies at start-up, or a port is taken by a process this repo
#   did not start; never kills processes it did not start (pids are checked
#   against their command line before any signal).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${FALLWATCH_STACK_DIR:-$REPO_ROOT/.stack}"
LOG_DIR="$STACK_DIR/logs"
HELPERS="$REPO_ROOT/scripts/stack"

# CI may run with a minimal environment: derive HOME from the passwd entry if unset.
HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME
KAFKA_VERSION="${FALLWATCH_KAFKA_VERSION:-4.1.1}"
CACHE_DIR="${FALLWATCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fallwatch}"
KAFKA_LIBS="$CACHE_DIR/kafka-$KAFKA_VERSION/libs"
TIMEOUT="${FALLWATCH_STACK_TIMEOUT:-120}"
KAFKA_HEAP="${FALLWATCH_KAFKA_HEAP:--Xms256m -Xmx768m}"

HOST=127.0.0.1
# The ports are a contract (docs/CONTRACTS.md); the overrides exist only so a second
# checkout (e.g. a fresh-clone CI rehearsal) can run beside the main one.
KAFKA_PORT="${FALLWATCH_STACK_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${FALLWATCH_STACK_CONTROLLER_PORT:-19093}"
REDIS_PORT="${FALLWATCH_STACK_REDIS_PORT:-16379}"

KAFKA_DIR="$STACK_DIR/kafka"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_LOG="$LOG_DIR/kafka.log"
REDIS_DIR="$STACK_DIR/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
REDIS_CONF="$REDIS_DIR/redis.conf"
REDIS_LOG="$LOG_DIR/redis.log"

export DEBIAN_FRONTEND=noninteractive

say() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }

python_bin() {
    # The probe is stdlib-only, so any python3 works; prefer the repo venv's when present.
    local candidate
    for candidate in "$REPO_ROOT/.venv/bin/python" python3 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1; then
            printf '%s' "$candidate"
            return 0
        fi
    done
    die "no python3 found (needed for the Kafka readiness probe)"
}

# --- process helpers --------------------------------------------------------

# Print the pid in $1 when that process is alive and its command line contains $2.
live_pid() {
    local pidfile="$1" marker="$2" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
    printf '%s' "$pid"
}

port_busy() {
    if command -v ss >/dev/null; then
        ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
    else
        (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
    fi
}

stop_pid() {
    local name="$1" pid="$2" grace="$3" waited=0
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= grace * 10)); then
            say "$name did not stop within ${grace}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# --- installation -----------------------------------------------------------

apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
    [[ "$(id -u)" == 0 ]] || die "$* missing and not root; run: sudo apt-get install -y $*"
    # Keep Debian's maintainer scripts from starting their own service (e.g. a
    # system redis on 6379): a policy-rc.d answering 101 forbids service starts.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added_policy=1
    fi
    say "installing $* with apt-get (log: $LOG_DIR/apt.log)"
    if ! apt-get install -y -q --no-install-recommends "$@" >>"$LOG_DIR/apt.log" 2>&1; then
        apt-get update -q >>"$LOG_DIR/apt.log" 2>&1 || true
        apt-get install -y -q --no-install-recommends "$@" >>"$LOG_DIR/apt.log" 2>&1 || {
            ((added_policy)) && rm -f "$policy"
            die "apt-get install $* failed; see $LOG_DIR/apt.log"
        }
    fi
    ((added_policy)) && rm -f "$policy"
    return 0
}

ensure_redis_installed() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
    apt_install redis-server redis-tools
}

ensure_java() {
    local major
    if command -v java >/dev/null; then
        major="$(java -XshowSettings:properties -version 2>&1 |
            sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p')"
        [[ -n "$major" && "$major" -ge 17 ]] && return 0
        say "java $major found; Kafka 4 needs 17+"
    fi
    apt_install openjdk-17-jre-headless
}

ensure_kafka_jars() {
    [[ -f "$KAFKA_LIBS/.complete" ]] && return 0
    command -v mvn >/dev/null || apt_install maven
    mkdir -p "$CACHE_DIR"
    # Two concurrent `up`s (e.g. two clones) must not fetch into the same folder.
    exec 8>"$CACHE_DIR/.fetch.lock"
    flock -w 600 8 || die "timed out waiting for another Kafka download ($CACHE_DIR/.fetch.lock)"
    if [[ ! -f "$KAFKA_LIBS/.complete" ]]; then
        local tmp="$CACHE_DIR/kafka-$KAFKA_VERSION.tmp.$$"
        rm -rf "$tmp"
        say "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_LIBS (log: $LOG_DIR/maven.log)"
        if ! mvn -B -q -f "$HELPERS/kafka-pom.xml" \
            -Dkafka.version="$KAFKA_VERSION" \
            dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$tmp/libs" >"$LOG_DIR/maven.log" 2>&1; then
            rm -rf "$tmp"
            die "Maven could not fetch Kafka $KAFKA_VERSION; see $LOG_DIR/maven.log"
        fi
        touch "$tmp/libs/.complete"
        rm -rf "$CACHE_DIR/kafka-$KAFKA_VERSION"
        mv "$tmp" "$CACHE_DIR/kafka-$KAFKA_VERSION"
    fi
    flock -u 8
}

# --- Kafka ------------------------------------------------------------------

# The broker settings every stack shares, the plain one and the secured one
# (scripts/stack/secure.sh adds only its listeners and security lines): single-node KRaft,
# topics never auto-created, sizes for a small machine. $1 controller port, $2 data folder.
kafka_base_config() {
    local controller_port="$1" data_dir="$2"
    cat <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$controller_port
controller.listener.names=CONTROLLER
log.dirs=$data_dir
# Topics are created on purpose (by the app's bootstrap or tests), never by a typo.
auto.create.topics.enable=false
delete.topic.enable=true
num.partitions=8
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests create many short-lived groups: do not wait 3 s for more members.
group.initial.rebalance.delay.ms=0
# Small machine (2 cores): few threads, small segments, bounded retention.
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.segment.bytes=67108864
log.retention.hours=24
log.retention.check.interval.ms=60000
EOF
}

write_kafka_config() {
    mkdir -p "$KAFKA_DIR/data"
    {
        printf '%s\n' "# Generated by scripts/stack.sh on every 'up'; edit the script, not this file."
        kafka_base_config "$CONTROLLER_PORT" "$KAFKA_DIR/data"
        cat <<EOF
# Plaintext listeners (the secured stack has SASL_SSL / SSL ones instead).
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
EOF
    } >"$KAFKA_PROPS"
}

# Fill the array KAFKA_JVM with the java command line shared by all Kafka main classes.
kafka_jvm() {
    local -a heap
    read -r -a heap <<<"$KAFKA_HEAP"
    KAFKA_JVM=(java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$HELPERS/log4j2.properties"
        -Dkafka.logs.dir="$LOG_DIR" -cp "$KAFKA_LIBS/*")
}

kafka_java() {
    kafka_jvm
    "${KAFKA_JVM[@]}" "$@"
}

format_kafka_storage() {
    [[ -f "$KAFKA_DIR/data/meta.properties" ]] && return 0
    local cluster_id
    cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$KAFKA_LOG" | tail -n1)"
    [[ -n "$cluster_id" ]] || die "could not generate a Kafka cluster id; see $KAFKA_LOG"
    say "formatting Kafka storage (cluster id $cluster_id)"
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_PROPS" \
        >>"$KAFKA_LOG" 2>&1 || die "kafka-storage format failed; see $KAFKA_LOG"
}

kafka_probe() {
    "$(python_bin)" "$HELPERS/kafka_probe.py" --bootstrap "$HOST:$KAFKA_PORT" --timeout 3
}

start_kafka() {
    local pid
    if pid="$(live_pid "$KAFKA_PID" "$KAFKA_PROPS")"; then
        say "kafka already running (pid $pid)"
    else
        rm -f "$KAFKA_PID"
        local port
        for port in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
            if port_busy "$port"; then
                die "port $port is taken by a process not started from $REPO_ROOT (see: ss -ltnp 'sport = :$port')"
            fi
        done
        ensure_java
        ensure_kafka_jars
        write_kafka_config
        format_kafka_storage
        say "starting kafka $KAFKA_VERSION on $HOST:$KAFKA_PORT (controller $HOST:$CONTROLLER_PORT)"
        printf '\n=== %s kafka start ===\n' "$(date -u +%FT%TZ)" >>"$KAFKA_LOG"
        # setsid: the broker must outlive this shell and not get its terminal's signals;
        # 8>&- 9>&-: it must not inherit (and so hold forever) the lock file descriptors.
        # Without job control a background child is no group leader, so setsid execs
        # in place and $! is the JVM's pid.
        kafka_jvm
        setsid "${KAFKA_JVM[@]}" kafka.Kafka "$KAFKA_PROPS" </dev/null >>"$KAFKA_LOG" 2>&1 8>&- 9>&- &
        echo "$!" >"$KAFKA_PID"
        disown || true
    fi
    local deadline=$((SECONDS + TIMEOUT)) err=""
    while ((SECONDS < deadline)); do
        if kafka_probe >/dev/null 2>"$STACK_DIR/.probe.err"; then
            say "kafka ready on $HOST:$KAFKA_PORT"
            return 0
        fi
        if ! live_pid "$KAFKA_PID" "$KAFKA_PROPS" >/dev/null; then
            tail -n 20 "$KAFKA_LOG" >&2 || true
            die "kafka exited during start-up; see $KAFKA_LOG"
        fi
        sleep 1
    done
    err="$(cat "$STACK_DIR/.probe.err" 2>/dev/null || true)"
    die "kafka did not answer a metadata request within ${TIMEOUT}s ($err); see $KAFKA_LOG"
}

# --- Redis ------------------------------------------------------------------

write_redis_config() {
    mkdir -p "$REDIS_DIR"
    cat >"$REDIS_CONF" <<EOF
# Generated by scripts/stack.sh on every 'up'; edit the script, not this file.
bind $HOST
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile "$REDIS_PID"
logfile "$REDIS_LOG"
dir "$REDIS_DIR"
appendonly yes
appendfsync everysec
save ""
EOF
}

redis_ping() { redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -qx PONG; }

start_redis() {
    local pid
    if pid="$(live_pid "$REDIS_PID" "$HOST:$REDIS_PORT")"; then
        say "redis already running (pid $pid)"
    else
        rm -f "$REDIS_PID"
        if port_busy "$REDIS_PORT"; then
            die "port $REDIS_PORT is taken by a process not started from $REPO_ROOT (see: ss -ltnp 'sport = :$REDIS_PORT')"
        fi
        ensure_redis_installed
        write_redis_config
        say "starting redis on $HOST:$REDIS_PORT (AOF on)"
        redis-server "$REDIS_CONF" </dev/null >>"$REDIS_LOG" 2>&1 8>&- 9>&- || die "redis-server failed to start; see $REDIS_LOG"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        if redis_ping; then
            say "redis ready on $HOST:$REDIS_PORT"
            return 0
        fi
        sleep 0.2
    done
    die "redis did not answer PING within ${TIMEOUT}s; see $REDIS_LOG"
}

# The secured stack's functions (cmd_up_secure, cmd_down_secure, ...) use the helpers above.
# shellcheck source=scripts/stack/secure.sh
source "$HELPERS/secure.sh"

# --- commands ---------------------------------------------------------------

cmd_up() {
    start_redis
    start_kafka
    say "logs: $LOG_DIR/{kafka,redis}.log"
}

cmd_down() {
    local pid stopped=0
    if pid="$(live_pid "$KAFKA_PID" "$KAFKA_PROPS")"; then
        stop_pid kafka "$pid" 60
        stopped=1
    fi
    rm -f "$KAFKA_PID"
    if pid="$(live_pid "$REDIS_PID" "$HOST:$REDIS_PORT")"; then
        stop_pid redis "$pid" 20
        stopped=1
    fi
    rm -f "$REDIS_PID"
    ((stopped)) || say "nothing running"
    say "stack down (data kept in $STACK_DIR; 'make clean' removes it)"
}

cmd_status() {
    local pid rc=0 detail
    if pid="$(live_pid "$KAFKA_PID" "$KAFKA_PROPS")"; then
        if detail="$(kafka_probe 2>&1)"; then
            printf 'kafka  up    pid %-7s %s:%s (controller %s:%s) %s\n' \
                "$pid" "$HOST" "$KAFKA_PORT" "$HOST" "$CONTROLLER_PORT" "${detail#ok }"
        else
            printf 'kafka  sick  pid %-7s %s:%s not answering: %s\n' "$pid" "$HOST" "$KAFKA_PORT" "$detail"
            rc=1
        fi
    else
        printf 'kafka  down  %s:%s\n' "$HOST" "$KAFKA_PORT"
        rc=1
    fi
    if pid="$(live_pid "$REDIS_PID" "$HOST:$REDIS_PORT")"; then
        if redis_ping; then
            printf 'redis  up    pid %-7s %s:%s\n' "$pid" "$HOST" "$REDIS_PORT"
        else
            printf 'redis  sick  pid %-7s %s:%s not answering PING\n' "$pid" "$HOST" "$REDIS_PORT"
            rc=1
        fi
    else
        printf 'redis  down  %s:%s\n' "$HOST" "$REDIS_PORT"
        rc=1
    fi
    printf 'logs   %s\n' "$LOG_DIR"
    return "$rc"
}

main() {
    local cmd="${1:-}"
    case "$cmd" in
        up | down | status | logs) ;;
        up-secure | down-secure | status-secure | watch-secure)
            main_secure "$@"
            return
            ;;
        *) die "usage: $0 up|down|status|logs, or up-secure|down-secure|status-secure [DIR]" ;;
    esac
    mkdir -p "$LOG_DIR"
    if [[ "$cmd" == logs ]]; then
        tail -n 50 "$KAFKA_LOG" "$REDIS_LOG" 2>/dev/null || true
        return 0
    fi
    if [[ "$cmd" == status ]]; then
        cmd_status
        return
    fi
    # One up/down at a time per checkout.
    exec 9>"$STACK_DIR/stack.lock"
    flock -w 120 9 || die "another 'stack.sh' is running in $REPO_ROOT (lock $STACK_DIR/stack.lock)"
    "cmd_$cmd"
}

main_secure() {
    local cmd="$1"
    shift
    mkdir -p "$STACK_DIR"
    case "$cmd" in
        status-secure) cmd_status_secure "$@" ;;
        watch-secure) cmd_watch_secure "$@" ;;
        *)
            # One up/down at a time per secured stack: the lock lives in its own folder.
            local dir
            if [[ "$cmd" == up-secure && -z "${1:-}" ]]; then
                dir="$(mktemp -d "${TMPDIR:-/tmp}/fallwatch-secure.XXXXXX")"
            else
                dir="$(secure_dir "${1:-}")"
            fi
            if [[ "$cmd" == up-secure ]]; then
                mkdir -p "$dir"
            elif [[ ! -d "$dir" ]]; then
                say "no secure stack folder $dir; nothing to stop"
                return 0
            fi
            exec 9>"$dir/stack.lock"
            flock -w 120 9 || die "another 'stack.sh $cmd' is running for $dir"
            "cmd_${cmd//-/_}" "$dir"
            ;;
    esac
}

# Run only when executed; sourcing (tests/unit/test_stack_config.py) just defines the functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
