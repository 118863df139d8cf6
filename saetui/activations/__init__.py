"""Activation collection: hooks with early exit (collector) and dataset -> on-disk shards (cache)."""
