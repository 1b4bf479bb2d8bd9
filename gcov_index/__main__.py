"""``python -m gcov_index`` and the ``gcov-index`` command.

Ctrl-C is one line and exit 130 from the first moment: until :func:`gcov_index.cli.main` takes
over (its imports are part of start-up), a Ctrl-C ends the process here. After a failure the
process ends at once, once its line is out: nothing that libraries do at interpreter exit
(asyncio's reports of abandoned tasks, runtimes torn down) can add lines or change the code.
"""

import _signal  # the C module under signal, loaded at once (signal builds enums first)
import os
import sys

_LINE = b"gcov-index: error: interrupted; nothing was written\n"


def _interrupted_at_start(signum, frame):
    os.write(2, _LINE)
    os._exit(130)


_interrupted_at_start.gcov_index_startup = True  # main() takes SIGINT back when it sees this


def _interrupted_at_exit(signum, frame):
    os._exit(130)


def run() -> None:
    _signal.signal(_signal.SIGINT, _interrupted_at_start)
    from .cli import main

    code = main()
    _signal.signal(_signal.SIGINT, _interrupted_at_exit)  # the work is done or refused
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    # ended at once, success or not: obstore's runtime threads must not meet a finalizing
    # interpreter (an abort or a segfault at exit); every output is closed and flushed by now
    os._exit(code)


if __name__ == "__main__":
    run()
