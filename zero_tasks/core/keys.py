"""Redis names of the wire contract (../shared/CONTRACT.md), in one place.

Other ZERO services already read and write these exact names: never rename one.
"""

OPPORTUNITY_CHANNEL = "chan:opportunity_update"
TRADE_UPDATE_CHANNEL = "chan:trade_update"

MARKET_STATE_KEY = "key:market_state"
EXECUTION_ENABLED_KEY = "key:execution_enabled"
STAND_DOWN_KEY = "key:stand_down_reason"

# Gateway-owned keys.
SEEN_PREFIX = "key:execution_seen:"  # + execution_id; the idempotency claim
COOLDOWN_PREFIX = "key:execution_cooldown:"  # + ticker; ISO time of the last order
WORKER_ALIVE_PREFIX = "key:execution_worker:"  # + hostname; worker heartbeat for /health
WORKERS_KEY = "key:execution_workers"  # sorted set: the workers that beat (adapters/registry.py)
DECISION_PREFIX = "key:execution_decision:"  # + event key; the decision outbox (hash: record, event, sent)
ATTEMPT_PREFIX = "key:execution_attempts:"  # + execution_id; order attempts (lookup first when > 1)
BRIDGE_MSG_PREFIX = "key:execution_bridge_msg:"  # + payload hash; occurrences claimed by bridges
OPPORTUNITY_RANK_KEY = "key:opportunity_rank"  # core logic's latest ranking (TTL 60 s)
DAILY_ORDERS_PREFIX = "key:execution_daily_orders:"  # + New York date; hash execution_id -> time
BROKER_RATE_KEY = "key:execution_broker_rate"  # sorted set of recent order-path broker calls
BREAKER_KEY = "key:execution_breaker"  # JSON while the circuit breaker is open
BREAKER_FAILURES_KEY = "key:execution_breaker_failures"  # consecutive broker failures
BLOCKLIST_PREFIX = "key:execution_blocklist:"  # + ticker; operator's block with expiry (JSON)
IN_FLIGHT_KEY = "key:execution_in_flight"  # sorted set: message_id -> last hand-over to the queue (ms)
IN_FLIGHT_TASKS_KEY = "key:execution_in_flight_tasks"  # hash: message_id -> its decide task (JSON)
STEP_PREFIX = "key:execution_step:"  # + task id; a delayed task's step claimed (delayed.py)
PERIOD_PREFIX = "key:execution_period:"  # + job:period number; a periodic job's run claimed
SESSION_KEY = "key:execution_session"  # the broker's trading session, kept until it opens or closes (session.py)
ALERT_CHANNEL = "chan:execution_alert"  # gateway-owned: breaker opened/closed, reconcile findings
OUTCOME_CHANNEL = "chan:execution_outcome"  # one message per execution flat again (the contract's shape)
LIFECYCLE_PREFIX = "key:execution_lifecycle:"  # + execution_id; hash: record (the lifecycle's JSON)
LIFECYCLE_DUE_KEY = "key:execution_lifecycle_due"  # sorted set: execution_id -> when its next step is due (ms)
LIFECYCLE_STEP_PREFIX = "key:execution_lifecycle_step:"  # + execution_id; one step at a time (SET NX PX)
LIFECYCLE_DONE_TTL_SECONDS = 7 * 86400  # a finished lifecycle is kept a week (zero-ops, reconcile)

CLAIM_TTL_SECONDS = 24 * 3600
DAILY_TTL_SECONDS = 5 * 86400  # a session's order hash outlives it, a long weekend included


def seen_key(execution_id: str) -> str:
    return SEEN_PREFIX + execution_id


def cooldown_key(ticker: str) -> str:
    return COOLDOWN_PREFIX + ticker


def attempt_key(execution_id: str) -> str:
    return ATTEMPT_PREFIX + execution_id


def blocklist_key(ticker: str) -> str:
    return BLOCKLIST_PREFIX + ticker


def worker_alive_key(hostname: str) -> str:
    return WORKER_ALIVE_PREFIX + hostname


def lifecycle_key(execution_id: str) -> str:
    return LIFECYCLE_PREFIX + execution_id


# The account mirror (core/mirror.py, adapters/mirror_store.py; written by zero_tasks/mirror).
MIRROR_LEASE_KEY = "key:execution_mirror_lease"  # hash holder, token: the consumer that leads
MIRROR_TOKEN_KEY = "key:execution_mirror_token"  # fencing token counter (one per new leadership)
MIRROR_SYNC_KEY = "key:execution_mirror_sync"  # JSON SyncRecord; expires when not confirmed
MIRROR_EPOCH_KEY = "key:execution_mirror_epoch"  # counter: one per (re)sync
MIRROR_TICKERS_KEY = "key:execution_mirror_tickers"  # set of tickers with a book
MIRROR_STATS_KEY = "key:execution_mirror_stats"  # hash: resyncs, events, refused, row9_mirror, row9_rest
MIRROR_BOOK_PREFIX = "key:execution_mirror_book:"  # + ticker; JSON Book (position, open orders)
MIRROR_ORDER_PREFIX = "key:execution_mirror_order:"  # + client_order_id; JSON OrderState
MIRROR_ENTRIES_PREFIX = "key:execution_mirror_entries:"  # + New York date; set of zx- client_order_ids
MIRROR_ENTRY_COUNT_PREFIX = "key:execution_mirror_entry_count:"  # + New York date; the set's size, a string (MGET)
MIRROR_ORDER_TTL_S = 5 * 86400


def mirror_book_key(ticker: str) -> str:
    return MIRROR_BOOK_PREFIX + ticker


def mirror_order_key(client_order_id: str) -> str:
    return MIRROR_ORDER_PREFIX + client_order_id


def mirror_entries_key(new_york_date: str) -> str:
    return MIRROR_ENTRIES_PREFIX + new_york_date


def mirror_entry_count_key(new_york_date: str) -> str:
    return MIRROR_ENTRY_COUNT_PREFIX + new_york_date
