"""``python -m tme_sim`` is the ``tme`` command."""

from tme_sim.cli import main

main()
