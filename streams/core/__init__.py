"""Shared foundations of the workers and tools: settings, errors, logs, metrics, health, video."""
