"""Kafka plumbing: topics, client security, the output-topic reader, dead letters, batches."""
