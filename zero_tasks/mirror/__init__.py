"""The account mirror's consumer: `python -m zero_tasks.mirror` (consumer.py)."""
