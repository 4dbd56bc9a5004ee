"""Load and fault experiments for fallwatch on the local stack (Kafka + Redis, 127.0.0.1 only).

Modules:
- ``load_tests.fleet``: camera-fleet simulator replaying PRE-ENCODED windows at a target
  aggregate rate (bounded in count and duration), so the producer is never the bottleneck.
- Worker subprocesses (run-isolated settings, start, readiness, kill -9, stop, /metrics,
  cleanup of the run's topics and Redis keys) come from ``streams.devtools.workers``, the
  one harness the demo, these experiments and the tests share.
- ``load_tests.collector``: background reader of the results, offload, alerts and
  dead-letter topics, with receive timestamps.
- ``load_tests.bare``: the bare inference loop in its own process (the baseline).
- ``load_tests.measure`` / ``load_tests.counters`` / ``load_tests.report``: percentiles and
  throughput from output times; cost and batch figures from ``/metrics`` deltas; tables.
- ``load_tests.bench``: ``python -m load_tests.bench [--quick]`` — throughput ratio,
  edge-path latency at 80 % of max load, cost vs cloud-only, printed and written to
  ``out/bench.json``.
- ``load_tests.chaos``: ``python -m load_tests.chaos`` — kill -9 of the edge and the cloud
  worker mid-stream; prints lost windows and duplicated alerts (also used by
  ``tests/e2e/test_kill9.py``).

Importing the package does no work and creates no clients.
"""
