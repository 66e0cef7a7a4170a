"""Benchmark of the execution gateway: `python -m bench` (full) or `python -m bench --quick`.

Everything runs on loopback against the in-process Alpaca paper simulator and a private
redis-server: the floor (bare PUBLISH + one alpaca-py submit), a direct single-process
baseline (bench/direct.py), the real gateway (bridge + Celery worker) with SQLite and
PostgreSQL audit, a 10,000-message burst, and the cost (RSS, CPU) of the processes.
"""
