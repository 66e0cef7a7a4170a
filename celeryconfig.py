"""Celery settings for a money-moving queue. Each choice is explained in docs/how-it-works.md.

Read by `zero_tasks.celery_app` through `config_from_object`. The broker URL comes from
the one validated settings object, so the paper-only guard runs before any worker starts.
"""

import sys

from kombu import Exchange, Queue

from zero_tasks.settings import settings_or_exit

# Flower (`celery -A zero_tasks flower`, through zero_ops.flower_guard) only watches: it is
# given no TASK_SIGNING_KEY. Every other process requires it here, and the worker's runtime
# requires it again whatever its command line says.
_settings = settings_or_exit(require_signing="flower" not in sys.argv[1:])

broker_url = _settings.broker_url
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # keep trying: the worker must come back by itself
broker_heartbeat = _settings.broker_heartbeat_s  # RabbitMQ: a cut-off worker's task comes back this soon (x2-3)
broker_transport_options = {
    # An unacked task (its worker died) is redelivered after this. It exceeds the task time
    # limit plus the longest retry countdown (checked by Settings), and no task is ever sent
    # with a countdown longer than half of what is left (a longer wait is a chain of short
    # hops, zero_tasks/core/delayed.py), so a task that is still running or waiting to run is
    # not handed to a second worker; the step guard makes a copy that comes anyway a no-op.
    "visibility_timeout": _settings.visibility_timeout_s,
    # Sweep for abandoned messages every 2 s instead of kombu's default ~100 s, so recovery
    # after a SIGKILLed worker is visibility_timeout + 2 s.
    "unacked_restore_interval": 2,
    "unacked_restore_throttle": 1,
    # The sweep's lock (held for one ZRANGE). kombu keeps it 300 s, and a worker that loses
    # Redis mid-sweep can still take it: its SET, retransmitted by TCP when the link is back,
    # lands after its client gave up, and nobody releases it. Every sweep then stops for
    # 5 minutes (seen in tests/test_hosts_e2e.py: a cut-off worker's task not taken over).
    "unacked_mutex_expire": 10,
    "socket_timeout": 5,
    "socket_connect_timeout": 5,
    "health_check_interval": 10,
}

# Late acks: a task is acknowledged after it ran, so a worker killed mid-task loses
# nothing; idempotency (execution_id claim, client_order_id) makes the re-run safe.
task_acks_late = True
task_reject_on_worker_lost = True
# A task that raises is rejected, never acked as done. None is meant to: every failure ends as a
# decision, and a decision that cannot be kept (Redis away) is requeued (tasks.py).
task_acks_on_failure_or_timeout = False
worker_prefetch_multiplier = 1  # a dead worker holds at most one unacked message per process
# A pool process warms its runtime before it reports up (zero_tasks/worker/warm.py: each step
# bounded by its own timeout, the broker's at most 30 s); Celery's 4 s would kill it when a
# dependency is slow to answer at start.
worker_proc_alive_timeout = 60.0
worker_cancel_long_running_tasks_on_connection_loss = False

task_time_limit = _settings.task_time_limit_s  # a hung task is killed, never left holding the line
task_soft_time_limit = max(1, int(_settings.task_time_limit_s * 0.8))  # ends as one ERROR decision

task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True  # decisions live in execution_log and chan:trade_update
result_backend = None

task_default_queue = "zero_execution"
# Every queue the gateway uses, declared: `celery -A zero_tasks worker` with no -Q consumes
# them all (decisions and orders; audit, follow-ups, hops and the reconcile), and
# `-Q zero_execution` / `-Q zero_audit` split them between workers. Declared exactly as
# Celery would make them on the fly (direct exchange and routing key of the queue's name).
task_queues = tuple(Queue(name, Exchange(name, type="direct"), routing_key=name)
                    for name in ("zero_execution", "zero_audit"))
task_routes = {
    "zero.decide": {"queue": "zero_execution"},
    "zero.decide_many": {"queue": "zero_execution"},
    "zero.place_order": {"queue": "zero_execution"},
    "zero.follow_order": {"queue": "zero_audit"},
    "zero.reconcile": {"queue": "zero_audit"},
    "zero.lifecycle_tick": {"queue": "zero_audit"},
    "zero.lifecycle_step": {"queue": "zero_execution"},
}

# Celery beat (run one: `celery -A zero_tasks worker -B` or `celery -A zero_tasks beat`). A
# second beat started by mistake costs nothing: each run claims its period in Redis first.
beat_schedule = {
    "reconcile-last-24h": {"task": "zero.reconcile", "schedule": float(_settings.reconcile_every_s),
                           "kwargs": {"hours": 24.0}},
    # The position lifecycle's durable schedule (zero_tasks/worker/lifecycle.py): the tick
    # hands each due execution to a sealed step task; the schedule itself lives in Redis.
    "lifecycle-tick": {"task": "zero.lifecycle_tick", "schedule": float(_settings.lifecycle_tick_s)},
}

# Task events cost the worker's main process a share of every task (a message per state
# change). Off by default; Flower switches them on in the running workers by itself
# (`enable_events`), so monitoring costs only while someone monitors.
worker_send_task_events = False
task_send_sent_event = False
worker_hijack_root_logger = False
timezone = "UTC"
enable_utc = True
