"""Ask the secured broker (SASL_SSL, SCRAM) for its cluster metadata with kafka-python.

Used by scripts/stack.sh ``up-secure`` / ``status-secure`` to decide whether the secured
broker is ready. Unlike kafka_probe.py it needs kafka-python (TLS and SCRAM by hand
would be a client of their own), so it runs in the repo's venv (``make setup``).

Input: ``--env FILE`` (the ``secure.env`` that ``up-secure`` writes: FALLWATCH_KAFKA_*
lines) and ``--timeout SECONDS``.
Output: on success one line ``ok brokers=N topics=M bootstrap=HOST:PORT`` and exit 0.
Guarantees: authenticates as the service's user through TLS verified against the
generated CA; "ready" means the broker answered DescribeCluster listing at least one
broker (it has registered with its KRaft controller) and answered a topic listing.
Failure modes: exit 1 with one line on stderr when the env file is incomplete, the
client cannot connect or authenticate, or no broker is registered yet; exit 2 when
kafka-python is not installed (run ``make setup``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_REQUIRED = (
    "FALLWATCH_KAFKA_BOOTSTRAP",
    "FALLWATCH_KAFKA_SECURITY_PROTOCOL",
    "FALLWATCH_KAFKA_SASL_MECHANISM",
    "FALLWATCH_KAFKA_SASL_USERNAME",
    "FALLWATCH_KAFKA_SASL_PASSWORD",
    "FALLWATCH_KAFKA_SSL_CAFILE",
)


def read_env(path: Path) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines (no quoting: up-secure writes plain values only)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def probe(env: dict[str, str], timeout_s: float) -> str:
    from kafka import KafkaAdminClient

    missing = [key for key in _REQUIRED if not env.get(key)]
    if missing:
        raise ValueError(f"env file lacks {', '.join(missing)}")
    timeout_ms = int(timeout_s * 1000)
    admin = KafkaAdminClient(
        bootstrap_servers=env["FALLWATCH_KAFKA_BOOTSTRAP"],
        client_id="fallwatch-stack-secure-probe",
        security_protocol=env["FALLWATCH_KAFKA_SECURITY_PROTOCOL"],
        sasl_mechanism=env["FALLWATCH_KAFKA_SASL_MECHANISM"],
        sasl_plain_username=env["FALLWATCH_KAFKA_SASL_USERNAME"],
        sasl_plain_password=env["FALLWATCH_KAFKA_SASL_PASSWORD"],
        ssl_cafile=env["FALLWATCH_KAFKA_SSL_CAFILE"],
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    try:
        brokers = admin.describe_cluster().get("brokers", [])
        if not brokers:
            raise RuntimeError("no broker registered yet")
        topics = admin.list_topics()
    finally:
        admin.close()
    return f"ok brokers={len(brokers)} topics={len(topics)} bootstrap={env['FALLWATCH_KAFKA_BOOTSTRAP']}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    try:
        import kafka  # noqa: F401
    except ImportError:
        print("kafka-python is not installed in this python; run `make setup`", file=sys.stderr)
        return 2
    try:
        print(probe(read_env(args.env), args.timeout))
    except Exception as exc:  # every failure means "not ready"; the caller retries
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
