"""The edges: Redis state and its scripts, the broker, the audit store and the metrics.

Each adapter reads or writes one outside system and hands plain facts to the core.
"""
