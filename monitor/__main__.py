"""`python -m monitor` is the same as the `inferwatch` command."""

from monitor.cli import main

main()
