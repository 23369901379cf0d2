"""Shared plumbing of the scripts/ CLIs: logging setup and clear one-line errors."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path
from typing import Callable

from .errors import UserError


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr with time and level (the workflow sends stderr to each rule's log).

    The first line names the host and, under SLURM, the job id, so every job log says where it ran.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    where = f"host {socket.gethostname()}"
    if os.environ.get("SLURM_JOB_ID"):
        where += f", SLURM job {os.environ['SLURM_JOB_ID']}"
    logging.getLogger("stylegan_inversion").info("%s: %s", Path(sys.argv[0]).name, where)


def run(main: Callable[[], int | None]) -> None:
    """Run a CLI main(); known errors become one 'error: ...' line and exit status 1."""
    try:
        code = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(int(code or 0))
