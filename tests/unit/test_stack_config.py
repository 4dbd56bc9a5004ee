"""The stack's generated configuration (scripts/stack.sh, scripts/stack/secure.sh), offline.

Sources stack.sh in bash (it runs nothing when sourced) and calls the config writers with
temporary folders: no service is started. The secured broker must be the plain broker's
settings plus its listener and security lines, and the secured stack's settings for the
service must pass the Redis CA through FALLWATCH_REDIS_SSL_CAFILE, not the URL.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from streams.core.settings import Settings
from streams.events.client import redis_client_options
from tests.secure_stack import read_env_file

STACK_SH = Path(__file__).resolve().parents[2] / "scripts" / "stack.sh"
# Keys whose values name the stack's own ports, folders and listeners.
PER_STACK = {
    "listeners",
    "advertised.listeners",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "controller.quorum.voters",
    "log.dirs",
}
SECURITY_PREFIXES = ("sasl.", "ssl.", "listener.name.")


def _write_configs(tmp_path: Path) -> None:
    script = f"""
set -euo pipefail
source {STACK_SH}
write_kafka_config
secure_paths {tmp_path}/secure
mkdir -p "$S_TLS"
: >"$S_TLS/ca.pem"
S_BROKER_PASSWORD=b0 S_CLIENT_PASSWORD=c0 S_REDIS_PASSWORD=r0
secure_write_kafka_config
secure_write_env
"""
    subprocess.run(
        ["bash", "-c", script],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "FALLWATCH_STACK_DIR": str(tmp_path / "plain"),
        },
        check=True,
        timeout=30,
        capture_output=True,
    )


def _properties(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert key not in values, f"{key} set twice in {path}"
            values[key] = value
    return values


def test_secured_broker_is_the_plain_config_plus_its_security_lines(tmp_path: Path) -> None:
    _write_configs(tmp_path)
    plain = _properties(tmp_path / "plain" / "kafka" / "server.properties")
    secured = _properties(tmp_path / "secure" / "kafka" / "server.properties")
    assert plain.keys() >= PER_STACK and secured.keys() >= PER_STACK
    shared = {k: v for k, v in plain.items() if k not in PER_STACK}
    assert shared and {k: secured.get(k) for k in shared} == shared
    extra = secured.keys() - plain.keys()
    assert extra and all(k.startswith(SECURITY_PREFIXES) for k in extra), sorted(extra)
    assert "PLAINTEXT" not in secured["listeners"] + secured["listener.security.protocol.map"]


def test_secured_env_passes_the_redis_ca_as_a_setting_not_in_the_url(tmp_path: Path) -> None:
    _write_configs(tmp_path)
    env = read_env_file(tmp_path / "secure" / "secure.env")
    ca = tmp_path / "secure" / "tls" / "ca.pem"
    assert env["FALLWATCH_REDIS_SSL_CAFILE"] == str(ca)
    assert env["FALLWATCH_REDIS_URL"].startswith("rediss://")
    assert "?" not in env["FALLWATCH_REDIS_URL"]
    settings = Settings(redis_url=env["FALLWATCH_REDIS_URL"], redis_ssl_cafile=ca)
    assert redis_client_options(settings)["ssl_ca_certs"] == str(ca)
