"""One check per row of the decision table, each a pure function over explicit facts.

A check returns a Verdict (the decision, with the values that decided it) or None (no
objection). The order in which they run is declared in `core/pipeline.py`; `worker/flow.py` runs it.
"""
