"""The decision core: the contract, intake, one check per row, the veto chain and the record.

Pure: nothing here imports Redis, SQL, the broker, Celery or an HTTP library (the import
contract in pyproject.toml, checked by `.ci/run`). Every fact comes in as an argument.
"""
