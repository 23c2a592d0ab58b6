"""Which subject each file belongs to: files of one subject always share a split.

``--subject-regex`` is searched in each name (``re.search``): its first group names the subject,
or the whole match when it has no group. Without it every file is its own subject, except for
HC18 (the shared folder and the embedded sample), whose ``NNN_HC``, ``NNN_2HC``, ``NNN_3HC`` are
one subject NNN: the default there is :data:`HC18_SUBJECT_REGEX`.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

from noisyseg_ext.errors import DataError

HC18_SUBJECT_REGEX = r"^(\d+)_"
# HC18's file names: 000_HC.png, 010_2HC.png, ... (any image ending).
_HC18_NAME = re.compile(r"^\d+_\d*HC(\.[A-Za-z]+)+$")


def looks_like_hc18(names: Sequence[str]) -> bool:
    """Whether every name has HC18's form ``NNN_HC``, ``NNN_2HC``... (then its subject default applies)."""
    return bool(names) and all(_HC18_NAME.match(n) for n in names)


def compile_subject_regex(pattern: str) -> re.Pattern:
    """The compiled ``--subject-regex``; DataError when it is not a valid regular expression."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise DataError(f"--subject-regex {pattern!r} is not a valid regular expression: {exc}") from None


def subjects_of(names: Sequence[str], pattern: Optional[str]) -> list[str]:
    """The subject of each name under ``pattern`` (None: the name itself). DataError naming the
    first names the pattern does not match, or matches with an empty subject."""
    if pattern is None:
        return list(names)
    regex = compile_subject_regex(pattern)
    out, unmatched = [], []
    for name in names:
        m = regex.search(name)
        subject = None if m is None else (m.group(1) if regex.groups else m.group(0))
        if not subject:  # no match, or an optional group that took no part
            unmatched.append(name)
        out.append(subject)
    if unmatched:
        shown = ", ".join(unmatched[:3]) + (f" and {len(unmatched) - 3} more" if len(unmatched) > 3 else "")
        raise DataError(f"--subject-regex {pattern!r} does not match {shown}: every file name must contain "
                        "its subject")
    return out
