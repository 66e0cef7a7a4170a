"""Flower's configuration file, given to it as `--conf` by zero_ops/flower_guard.py: empty.

Why this exists: without `--conf`, Flower executes `flowerconfig.py` from its working
directory, and whatever that file sets (basic_auth, auth, read_only, unix_socket, ...) would
replace what the guard decided. Pointing Flower at this file means no other file is read.
Every setting the guard allows is on Flower's command line; keep this file without code.
"""
