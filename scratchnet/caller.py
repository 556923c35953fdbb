"""Where a warning should point: the user's line, however deep inside scratchnet it was raised.

``warnings.warn(message, stacklevel=k)`` names the line k frames up from the function that warns.
A fixed k breaks as soon as a call path gains or loses a frame (fit -> _run_epoch -> ...), and a
warning that names a line inside scratchnet is shown once for all the user's calls (Python
shows a warning once per line it names). ``user_stacklevel()`` counts the frames up to the
first one outside this package, the line the user wrote (Python 3.12's ``skip_file_prefixes``
does the same; scratchnet supports 3.10).
"""

from __future__ import annotations

import os
import sys

PACKAGE_FOLDER = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` in the CALLING function that names the first
    frame outside scratchnet (1 = the calling function itself, if it is outside)."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(PACKAGE_FOLDER):
        frame, level = frame.f_back, level + 1
    return level
