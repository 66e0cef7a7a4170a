"""Rules of the pure core (zero_tasks/core) that its table tests leave unpinned: each test
here kills a mutant that `make mutate` found surviving (docs/mutation.md)."""

from __future__ import annotations
