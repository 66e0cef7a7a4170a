"""The bridge: chan:opportunity_update -> validated Celery task keyed by execution_id."""
