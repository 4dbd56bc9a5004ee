"""The cloud worker: offload requests to the large model, results, pending removal."""
