"""The edge worker: Faust app and agent, inference, routing, fallback sweeper, metrics."""
