"""Celery settings for a money-moving queue. Each choice is explained in README.md.

Read by `zero_tasks.celery_app` through `config_from_object`. The broker URL comes from
the one validated settings object, so the paper-only guard runs before any worker starts.
"""

from zero_tasks.runtime import settings_or_exit

_settings = settings_or_exit()

broker_url = _settings.broker_url
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # keep trying: the worker must come back by itself
broker_transport_options = {
    # An unacked task (worker died) is redelivered after this; it must exceed the longest
    # retry countdown (broker_retry_backoff_max_s) so a waiting retry is not run twice.
    "visibility_timeout": 300,
    "socket_timeout": 5,
    "socket_connect_timeout": 5,
    "health_check_interval": 10,
}

# Late acks: a task is acknowledged after it ran, so a worker killed mid-task loses
# nothing; idempotency (execution_id claim, client_order_id) makes the re-run safe.
task_acks_late = True
task_reject_on_worker_lost = True
task_acks_on_failure_or_timeout = True
worker_prefetch_multiplier = 1  # a dead worker holds at most one unacked message per process
worker_cancel_long_running_tasks_on_connection_loss = False

task_time_limit = 120  # a hung task is killed and redelivered, never left holding the line
task_soft_time_limit = 100

task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True  # decisions live in execution_log and chan:trade_update
result_backend = None

task_default_queue = "zero_execution"
task_routes = {
    "zero.decide": {"queue": "zero_execution"},
    "zero.place_order": {"queue": "zero_execution"},
    "zero.write_audit": {"queue": "zero_audit"},
}

worker_send_task_events = True  # Flower
task_send_sent_event = True
worker_hijack_root_logger = False
timezone = "UTC"
enable_utc = True
