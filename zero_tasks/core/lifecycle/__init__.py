"""The position lifecycle, pure: what the gateway does with a position after its entry.

ZERO labels each opportunity PASS / FAIL / EXPIRED by its truth test (target_atr x ATR
reached first, stop_atr x ATR first, or neither within the horizon); the gateway closes
every position it opens by the same rule with real paper fills. One concern per module:
`atr` (ATR(14) of 5-minute bars as ZERO computes it), `prices` (the protect's limit and
stop on Alpaca's tick), `horizon` (the due time in trading minutes), `state` (the
per-execution record and the broker facts), `rules` (the exit decision, one table),
`outcome` (PASS / FAIL / EXPIRED and the realized P&L). No I/O anywhere here.
"""
