"""``python -m bayesstruct`` is the ``bayesstruct`` command."""

from .cli import main

main()
