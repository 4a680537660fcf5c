"""``python -m neurec`` / ``neurec``: the command line (see :mod:`neurec.cli`).

``neurec`` alone runs the one-shot main job; ``neurec train``, ``recommend``, ``evaluate``
and ``update`` are the production subcommands.
"""
import sys

from neurec.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
