"""`python -m opto_dashboard`: the same as the `opto-dashboard` command."""

from .cli import main

__all__: list[str] = []

main()
