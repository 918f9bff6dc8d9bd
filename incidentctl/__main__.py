"""`python -m incidentctl`: the command line."""

from incidentctl.cli import main

main()
