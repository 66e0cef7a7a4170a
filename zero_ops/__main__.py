"""`python -m zero_ops <verb>`: the same CLI as the `zero-ops` entry point."""

from zero_ops.cli import main

if __name__ == "__main__":
    main()
