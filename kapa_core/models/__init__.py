"""Data models: points, batches, group keys, durations and line protocol."""
