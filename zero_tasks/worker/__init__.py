"""The Celery worker: the app, its per-process runtime, the tasks and the flow of one message."""
