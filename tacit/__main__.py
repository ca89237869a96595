"""``python -m tacit`` is the ``tacit`` command (how the demo starts its worker child process)."""

from tacit.cli import main

main()
