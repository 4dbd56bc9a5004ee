"""Developer tools: the demo, its collector and report, the one worker-process harness."""
