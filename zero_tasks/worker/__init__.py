"""The Celery worker: its per-process runtime and warm-up, the tasks and the flow of one message.

Only the worker imports these modules (import-linter, pyproject.toml): the app is
zero_tasks/celery_app.py, which names them in its `include` for the worker to load.
"""
