"""``python -m admin``: the exit code of the command is the exit code of the process."""

import os
import sys

from admin.cli import main

try:
    code = main()
    sys.stdout.flush()
except BrokenPipeError:
    # The reader went away (``| head``): stop quietly, as other command-line tools do, and
    # point stdout at /dev/null so the interpreter's last flush does not complain either.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 1
raise SystemExit(code)
