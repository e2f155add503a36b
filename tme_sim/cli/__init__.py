"""The ``tme`` command line: :data:`app` (typer) and :func:`main`, its entry point."""

from tme_sim.cli.main import app, main

__all__ = ["app", "main"]
