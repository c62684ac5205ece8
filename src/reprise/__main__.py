"""`python -m reprise` and the `reprise` command's entry point.

Ctrl-C at any moment, even while Python is still importing reprise, ends with one line on
stderr and exit code 130, never a traceback (the CLI's own handler covers the commands)."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from reprise.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("reprise: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
