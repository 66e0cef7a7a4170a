"""The operator's CLI for the ZERO execution gateway: `python -m zero_ops <verb>`.

Everything an operator does by hand (kill switch, market state for a demo, a sample
ranking, reading the audit) goes through the same validated settings as the gateway, so
the CLI refuses to run unless ALPACA_PAPER=true and never prints a credential.
"""
