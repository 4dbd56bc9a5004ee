# shellcheck shell=bash
# The secured stack: Kafka with SASL_SSL (SCRAM-SHA-512) and Redis with TLS and a password.
# Sourced by scripts/stack.sh, whose helpers it uses (say, die, live_pid, stop_pid,
# port_busy, python_bin, ensure_java, ensure_kafka_jars, ensure_redis_installed,
# kafka_jvm, kafka_base_config); not run on its own.
#
# Commands (scripts/stack.sh <command> [DIR]):
#   up-secure [DIR]      generate into DIR (default: a new `mktemp -d`) a CA, a server
#                        certificate for 127.0.0.1/localhost, SCRAM users and a Redis password;
#                        start a second broker from the same jars and a second redis-server;
#                        return once both answered through TLS with the generated credentials
#   down-secure [DIR]    stop both and the owner watcher (default DIR: the last `up-secure`)
#   status-secure [DIR]  one line per service, exit 1 if any is down
# Inputs (environment, all optional):
#   FALLWATCH_SECURE_{KAFKA,CONTROLLER,REDIS}_PORT  default 19094, 19095, 16380
#   FALLWATCH_SECURE_OWNER_PID   a watcher process stops the stack once that pid is gone
#                                (pytest passes its own: no broker outlives a killed run)
#   FALLWATCH_SECURE_KAFKA_HEAP  default "-Xms128m -Xmx512m"
#   and stack.sh's FALLWATCH_STACK_TIMEOUT, FALLWATCH_KAFKA_VERSION, FALLWATCH_CACHE_DIR.
# Outputs, all under DIR:
#   secure.env (mode 600)  FALLWATCH_* lines that point the service at this stack
#                          (FALLWATCH_KAFKA_BOOTSTRAP, _SECURITY_PROTOCOL, _SASL_MECHANISM,
#                          _SASL_USERNAME, _SASL_PASSWORD, _SSL_CAFILE, FALLWATCH_REDIS_URL
#                          as rediss://:PASSWORD@127.0.0.1:PORT/0 and
#                          FALLWATCH_REDIS_SSL_CAFILE=CA)
#   kafka/server.properties  the plain stack's broker settings (kafka_base_config) plus
#                          the SASL_SSL/SSL listeners and security lines
#   tls/ca.pem             the CA clients trust; tls/ holds the keys too (mode 700)
#   logs/{kafka,redis,watch}.log, kafka/, redis/ (AOF on)
#   <repo>/.stack/secure.dir  the last DIR, so `down-secure` without DIR finds it
# Guarantees: binds 127.0.0.1 only and opens no plaintext port (the controller listener is
#   SSL; Redis runs with `port 0`); the SCRAM users exist from storage-format time on
#   (`--add-scram`); secrets are random per `up-secure` and written only to files of mode
#   600 under DIR; pids are checked against their command line before any signal.
# Failure modes: exits non-zero naming the log to read when a port is taken, a tool is
#   missing, or a service does not answer within FALLWATCH_STACK_TIMEOUT; the caller then
#   runs `down-secure DIR` to stop whatever did start.

SECURE_KAFKA_PORT="${FALLWATCH_SECURE_KAFKA_PORT:-19094}"
SECURE_CONTROLLER_PORT="${FALLWATCH_SECURE_CONTROLLER_PORT:-19095}"
SECURE_REDIS_PORT="${FALLWATCH_SECURE_REDIS_PORT:-16380}"
SECURE_KAFKA_HEAP="${FALLWATCH_SECURE_KAFKA_HEAP:--Xms128m -Xmx512m}"
SECURE_LAST_DIR_FILE="$STACK_DIR/secure.dir"
SECURE_SCRAM_MECHANISM=SCRAM-SHA-512
# The broker's own user (inter-broker traffic) and the one the service and tests log in as.
SECURE_BROKER_USER=broker
SECURE_CLIENT_USER=fallwatch

# Resolve the run folder: $1, else the one the last `up-secure` recorded.
secure_dir() {
    local dir="${1:-}"
    if [[ -z "$dir" && -s "$SECURE_LAST_DIR_FILE" ]]; then
        dir="$(cat "$SECURE_LAST_DIR_FILE")"
    fi
    [[ -n "$dir" ]] || die "no secure stack folder given and none recorded in $SECURE_LAST_DIR_FILE"
    # The folder lands in Java properties and env files: keep it to plain characters.
    [[ "$dir" =~ ^[A-Za-z0-9/._-]+$ ]] || die "secure stack folder must match [A-Za-z0-9/._-]+: $dir"
    printf '%s' "$dir"
}

# Set the S_* path variables for run folder $1.
secure_paths() {
    S_DIR="$1"
    S_TLS="$S_DIR/tls"
    S_LOGS="$S_DIR/logs"
    S_ENV="$S_DIR/secure.env"
    S_SECRETS="$S_DIR/secrets.env"
    S_KAFKA_DIR="$S_DIR/kafka"
    S_KAFKA_PROPS="$S_KAFKA_DIR/server.properties"
    S_KAFKA_PID="$S_KAFKA_DIR/kafka.pid"
    S_KAFKA_LOG="$S_LOGS/kafka.log"
    S_REDIS_DIR="$S_DIR/redis"
    S_REDIS_CONF="$S_REDIS_DIR/redis.conf"
    S_REDIS_PID="$S_REDIS_DIR/redis.pid"
    S_REDIS_LOG="$S_LOGS/redis.log"
    S_WATCH_PID="$S_DIR/watch.pid"
}

# --- secrets and certificates -------------------------------------------------

secure_make_secrets() {
    # Hex only: the values go into Java properties, a JAAS line, --add-scram and a URL.
    [[ -s "$S_SECRETS" ]] && return 0
    (
        umask 077
        printf 'BROKER_PASSWORD=%s\nCLIENT_PASSWORD=%s\nREDIS_PASSWORD=%s\n' \
            "$(openssl rand -hex 24)" "$(openssl rand -hex 24)" "$(openssl rand -hex 24)" \
            >"$S_SECRETS"
    )
}

secure_load_secrets() {
    local line
    while IFS= read -r line; do
        case "$line" in
            BROKER_PASSWORD=*) S_BROKER_PASSWORD="${line#*=}" ;;
            CLIENT_PASSWORD=*) S_CLIENT_PASSWORD="${line#*=}" ;;
            REDIS_PASSWORD=*) S_REDIS_PASSWORD="${line#*=}" ;;
        esac
    done <"$S_SECRETS"
    [[ -n "${S_BROKER_PASSWORD:-}" && -n "${S_CLIENT_PASSWORD:-}" && -n "${S_REDIS_PASSWORD:-}" ]] ||
        die "incomplete $S_SECRETS; delete $S_DIR and run up-secure again"
}

secure_make_certificates() {
    [[ -s "$S_TLS/server-keystore.pem" ]] && return 0
    command -v openssl >/dev/null || apt_install openssl
    mkdir -p "$S_TLS"
    chmod 700 "$S_TLS"
    local log="$S_LOGS/openssl.log"
    say "generating a test CA and a server certificate for 127.0.0.1/localhost in $S_TLS"
    # Two days: long enough for any test session, short enough to be useless if it leaks.
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 \
            -subj "/CN=fallwatch test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$S_TLS/ca.key" -out "$S_TLS/ca.pem" &&
            openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
                -keyout "$S_TLS/server.key" -out "$S_TLS/server.csr" &&
            printf '%s\n' \
                "basicConstraints=critical,CA:FALSE" \
                "keyUsage=critical,digitalSignature,keyEncipherment" \
                "extendedKeyUsage=serverAuth,clientAuth" \
                "subjectAltName=IP:127.0.0.1,DNS:localhost" \
                "subjectKeyIdentifier=hash" \
                "authorityKeyIdentifier=keyid,issuer" >"$S_TLS/server.ext" &&
            openssl x509 -req -in "$S_TLS/server.csr" -CA "$S_TLS/ca.pem" -CAkey "$S_TLS/ca.key" \
                -CAcreateserial -days 2 -sha256 -extfile "$S_TLS/server.ext" \
                -out "$S_TLS/server.pem"
    } >>"$log" 2>&1 || die "openssl failed to generate the certificates; see $log"
    # Kafka's PEM keystore: the PKCS#8 key followed by the certificate chain.
    cat "$S_TLS/server.key" "$S_TLS/server.pem" "$S_TLS/ca.pem" >"$S_TLS/server-keystore.pem"
    chmod 600 "$S_TLS"/*.key "$S_TLS/server-keystore.pem"
    chmod 644 "$S_TLS/ca.pem"
}

secure_write_env() {
    (
        umask 077
        cat >"$S_ENV" <<EOF
FALLWATCH_KAFKA_BOOTSTRAP=$HOST:$SECURE_KAFKA_PORT
FALLWATCH_KAFKA_SECURITY_PROTOCOL=SASL_SSL
FALLWATCH_KAFKA_SASL_MECHANISM=$SECURE_SCRAM_MECHANISM
FALLWATCH_KAFKA_SASL_USERNAME=$SECURE_CLIENT_USER
FALLWATCH_KAFKA_SASL_PASSWORD=$S_CLIENT_PASSWORD
FALLWATCH_KAFKA_SSL_CAFILE=$S_TLS/ca.pem
FALLWATCH_REDIS_URL=rediss://:$S_REDIS_PASSWORD@$HOST:$SECURE_REDIS_PORT/0
FALLWATCH_REDIS_SSL_CAFILE=$S_TLS/ca.pem
EOF
    )
}

# --- Kafka (SASL_SSL) -----------------------------------------------------------

# The plain stack's broker settings (stack.sh kafka_base_config) plus this stack's
# listeners and security lines.
secure_write_kafka_config() {
    mkdir -p "$S_KAFKA_DIR/data"
    (
        umask 077
        {
            printf '%s\n' "# Generated by scripts/stack.sh up-secure (scripts/stack/secure.sh); holds a secret."
            kafka_base_config "$SECURE_CONTROLLER_PORT" "$S_KAFKA_DIR/data"
            cat <<EOF
# Security: SASL_SSL (SCRAM) for clients and brokers, SSL for the controller.
listeners=SASL_SSL://$HOST:$SECURE_KAFKA_PORT,CONTROLLER://$HOST:$SECURE_CONTROLLER_PORT
advertised.listeners=SASL_SSL://$HOST:$SECURE_KAFKA_PORT
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
sasl.enabled.mechanisms=$SECURE_SCRAM_MECHANISM
sasl.mechanism.inter.broker.protocol=$SECURE_SCRAM_MECHANISM
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$SECURE_BROKER_USER" password="$S_BROKER_PASSWORD";
ssl.keystore.type=PEM
ssl.keystore.location=$S_TLS/server-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$S_TLS/ca.pem
ssl.client.auth=none
ssl.endpoint.identification.algorithm=https
EOF
        } >"$S_KAFKA_PROPS"
    )
}

# kafka_jvm with this stack's heap and log folder.
secure_kafka_jvm() {
    local KAFKA_HEAP="$SECURE_KAFKA_HEAP" LOG_DIR="$S_LOGS"
    kafka_jvm
}

secure_format_kafka_storage() {
    [[ -f "$S_KAFKA_DIR/data/meta.properties" ]] && return 0
    local cluster_id
    secure_kafka_jvm
    cluster_id="$("${KAFKA_JVM[@]}" kafka.tools.StorageTool random-uuid 2>>"$S_KAFKA_LOG" | tail -n1)"
    [[ -n "$cluster_id" ]] || die "could not generate a Kafka cluster id; see $S_KAFKA_LOG"
    say "formatting secure Kafka storage with SCRAM users $SECURE_BROKER_USER, $SECURE_CLIENT_USER"
    "${KAFKA_JVM[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$S_KAFKA_PROPS" \
        --add-scram "$SECURE_SCRAM_MECHANISM=[name=$SECURE_BROKER_USER,password=$S_BROKER_PASSWORD]" \
        --add-scram "$SECURE_SCRAM_MECHANISM=[name=$SECURE_CLIENT_USER,password=$S_CLIENT_PASSWORD]" \
        >>"$S_KAFKA_LOG" 2>&1 || die "kafka-storage format failed; see $S_KAFKA_LOG"
}

secure_kafka_probe() {
    "$(python_bin)" "$HELPERS/secure_probe.py" --env "$S_ENV" --timeout 5
}

secure_start_kafka() {
    local pid port
    if pid="$(live_pid "$S_KAFKA_PID" "$S_KAFKA_PROPS")"; then
        say "secure kafka already running (pid $pid)"
    else
        rm -f "$S_KAFKA_PID"
        for port in "$SECURE_KAFKA_PORT" "$SECURE_CONTROLLER_PORT"; do
            port_busy "$port" && die "port $port is taken (see: ss -ltnp 'sport = :$port')"
        done
        ensure_java
        ensure_kafka_jars
        secure_write_kafka_config
        secure_format_kafka_storage
        say "starting secure kafka $KAFKA_VERSION on $HOST:$SECURE_KAFKA_PORT (SASL_SSL, $SECURE_SCRAM_MECHANISM; controller $HOST:$SECURE_CONTROLLER_PORT, SSL)"
        printf '\n=== %s kafka start ===\n' "$(date -u +%FT%TZ)" >>"$S_KAFKA_LOG"
        # As in start_kafka: setsid execs in place, so $! is the JVM's pid.
        secure_kafka_jvm
        setsid "${KAFKA_JVM[@]}" kafka.Kafka "$S_KAFKA_PROPS" </dev/null >>"$S_KAFKA_LOG" 2>&1 8>&- 9>&- &
        echo "$!" >"$S_KAFKA_PID"
        disown || true
    fi
    local deadline=$((SECONDS + TIMEOUT)) err=""
    while ((SECONDS < deadline)); do
        if secure_kafka_probe >/dev/null 2>"$S_DIR/.probe.err"; then
            say "secure kafka ready on $HOST:$SECURE_KAFKA_PORT"
            return 0
        fi
        if ! live_pid "$S_KAFKA_PID" "$S_KAFKA_PROPS" >/dev/null; then
            tail -n 20 "$S_KAFKA_LOG" >&2 || true
            die "secure kafka exited during start-up; see $S_KAFKA_LOG"
        fi
        sleep 1
    done
    err="$(tail -n 1 "$S_DIR/.probe.err" 2>/dev/null || true)"
    die "secure kafka did not answer within ${TIMEOUT}s ($err); see $S_KAFKA_LOG"
}

# --- Redis (TLS + requirepass) ------------------------------------------------------

secure_write_redis_config() {
    mkdir -p "$S_REDIS_DIR"
    (
        umask 077
        cat >"$S_REDIS_CONF" <<EOF
# Generated by scripts/stack.sh up-secure (scripts/stack/secure.sh); holds a secret.
bind $HOST
port 0
tls-port $SECURE_REDIS_PORT
tls-cert-file $S_TLS/server.pem
tls-key-file $S_TLS/server.key
tls-ca-cert-file $S_TLS/ca.pem
# Clients prove who they are with the password, not with a client certificate.
tls-auth-clients no
requirepass $S_REDIS_PASSWORD
protected-mode yes
daemonize yes
pidfile "$S_REDIS_PID"
logfile "$S_REDIS_LOG"
dir "$S_REDIS_DIR"
appendonly yes
appendfsync everysec
save ""
EOF
    )
}

secure_redis_ping() {
    REDISCLI_AUTH="$S_REDIS_PASSWORD" redis-cli --tls --cacert "$S_TLS/ca.pem" \
        -h "$HOST" -p "$SECURE_REDIS_PORT" ping 2>/dev/null | grep -qx PONG
}

# redis-server's process title is "redis-server HOST:PORT" (the TLS port when `port 0`).
secure_redis_marker() { printf 'redis-server %s:%s' "$HOST" "$SECURE_REDIS_PORT"; }

secure_start_redis() {
    local pid
    if pid="$(live_pid "$S_REDIS_PID" "$(secure_redis_marker)")"; then
        say "secure redis already running (pid $pid)"
    else
        rm -f "$S_REDIS_PID"
        port_busy "$SECURE_REDIS_PORT" &&
            die "port $SECURE_REDIS_PORT is taken (see: ss -ltnp 'sport = :$SECURE_REDIS_PORT')"
        ensure_redis_installed
        secure_write_redis_config
        say "starting secure redis on $HOST:$SECURE_REDIS_PORT (TLS only, password, AOF on)"
        redis-server "$S_REDIS_CONF" </dev/null >>"$S_REDIS_LOG" 2>&1 8>&- 9>&- ||
            die "redis-server failed to start; see $S_REDIS_LOG"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        if secure_redis_ping; then
            say "secure redis ready on $HOST:$SECURE_REDIS_PORT"
            return 0
        fi
        sleep 0.2
    done
    die "secure redis did not answer PING over TLS within ${TIMEOUT}s; see $S_REDIS_LOG"
}

# --- owner watcher ----------------------------------------------------------------------

secure_start_watcher() {
    local owner="${FALLWATCH_SECURE_OWNER_PID:-}"
    [[ -n "$owner" ]] || return 0
    [[ "$owner" =~ ^[0-9]+$ ]] && kill -0 "$owner" 2>/dev/null ||
        die "FALLWATCH_SECURE_OWNER_PID=$owner is not a live process"
    live_pid "$S_WATCH_PID" "watch-secure $S_DIR" >/dev/null && return 0
    setsid bash "$REPO_ROOT/scripts/stack.sh" watch-secure "$S_DIR" "$owner" \
        </dev/null >>"$S_LOGS/watch.log" 2>&1 8>&- 9>&- &
    echo "$!" >"$S_WATCH_PID"
    disown || true
    say "watcher (pid $(cat "$S_WATCH_PID")) stops this stack when process $owner ends"
}

# The watcher's loop: once the owner is gone, stop the stack (pytest killed, say).
cmd_watch_secure() {
    local dir="$1" owner="$2"
    secure_paths "$(secure_dir "$dir")"
    while kill -0 "$owner" 2>/dev/null; do
        sleep 1
    done
    say "owner process $owner ended; stopping the secure stack in $S_DIR"
    secure_stop_services
}

# --- commands ------------------------------------------------------------------------

cmd_up_secure() {
    local dir
    dir="$(cd "$1" && pwd)"
    secure_paths "$(secure_dir "$dir")"
    mkdir -p "$S_LOGS"
    chmod 700 "$S_DIR"
    printf '%s\n' "$S_DIR" >"$SECURE_LAST_DIR_FILE"
    secure_make_secrets
    secure_load_secrets
    secure_make_certificates
    secure_write_env
    # The watcher first: a start-up that dies half-way is cleaned up too.
    secure_start_watcher
    secure_start_redis
    secure_start_kafka
    say "secure stack up; settings for the service: $S_ENV"
}

secure_stop_services() {
    local pid
    if pid="$(live_pid "$S_KAFKA_PID" "$S_KAFKA_PROPS")"; then
        stop_pid "secure kafka" "$pid" 60
    fi
    rm -f "$S_KAFKA_PID"
    if pid="$(live_pid "$S_REDIS_PID" "$(secure_redis_marker_from_conf)")"; then
        stop_pid "secure redis" "$pid" 20
    fi
    rm -f "$S_REDIS_PID"
}

# The port comes from the run's own redis.conf: down-secure may run with other variables.
secure_redis_marker_from_conf() {
    local port
    port="$(sed -n 's/^tls-port \([0-9]*\)$/\1/p' "$S_REDIS_CONF" 2>/dev/null || true)"
    printf 'redis-server %s:%s' "$HOST" "${port:-$SECURE_REDIS_PORT}"
}

cmd_down_secure() {
    local pid
    secure_paths "$(secure_dir "${1:-}")"
    if pid="$(live_pid "$S_WATCH_PID" "watch-secure $S_DIR")"; then
        kill -TERM "$pid" 2>/dev/null || true
    fi
    rm -f "$S_WATCH_PID"
    secure_stop_services
    say "secure stack down (files kept in $S_DIR)"
}

cmd_status_secure() {
    local pid rc=0 detail
    secure_paths "$(secure_dir "${1:-}")"
    if [[ -s "$S_SECRETS" ]]; then
        secure_load_secrets
    fi
    if pid="$(live_pid "$S_KAFKA_PID" "$S_KAFKA_PROPS")"; then
        if detail="$(secure_kafka_probe 2>&1)"; then
            printf 'kafka  up    pid %-7s %s\n' "$pid" "$detail"
        else
            printf 'kafka  sick  pid %-7s %s\n' "$pid" "$detail"
            rc=1
        fi
    else
        printf 'kafka  down  (%s)\n' "$S_DIR"
        rc=1
    fi
    if pid="$(live_pid "$S_REDIS_PID" "$(secure_redis_marker_from_conf)")"; then
        printf 'redis  up    pid %-7s %s\n' "$pid" "$(secure_redis_marker_from_conf)"
    else
        printf 'redis  down  (%s)\n' "$S_DIR"
        rc=1
    fi
    return "$rc"
}
