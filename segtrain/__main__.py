"""`python -m segtrain …` (what `torchrun -m segtrain run …` executes in every process)."""

from segtrain.cli import main

if __name__ == "__main__":
    main()
