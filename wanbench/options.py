"""The command line's option types and the options several commands share (``wanbench compare``,
``report``, ``share``): one home, imported by :mod:`wanbench.cli`, :mod:`wanbench.share` and
:mod:`wanbench.judging` (whose OPTIONS are the verdict options built on these types).

Each type reads text as argparse does and raises ``argparse.ArgumentTypeError`` with one line.
"""

from __future__ import annotations

import argparse

__all__ = ["MEASURED_KEYS", "add_sides", "fraction", "measurement", "non_negative", "text", "whole"]


def non_negative(text):
    """A number >= 0 from text (argparse type); ArgumentTypeError otherwise."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text):
    """A number strictly between 0 and 1 from text (argparse type)."""
    value = non_negative(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


MEASURED_KEYS = ("cv_pct", "df", "measured")


def measurement(text):
    """A measured noise ``cv_pct=X,df=N,measured=YYYY-MM-DD`` (argparse type) as {cv_pct, df, measured}."""
    from datetime import date

    fields = {}
    for part in str(text).split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in MEASURED_KEYS:
            raise argparse.ArgumentTypeError(f"expected cv_pct=X,df=N,measured=YYYY-MM-DD, got {text!r}")
        fields[key.strip()] = value.strip()
    missing = [k for k in MEASURED_KEYS if not fields.get(k)]
    if missing:
        raise argparse.ArgumentTypeError(f"{', '.join(missing)} missing in {text!r} (a measurement needs all three)")
    try:
        cv, df = float(fields["cv_pct"]), float(fields["df"])
    except ValueError:
        raise argparse.ArgumentTypeError(f"cv_pct and df must be numbers, got {text!r}") from None
    if not (cv > 0 and df > 0):
        raise argparse.ArgumentTypeError(f"cv_pct and df must be > 0, got {text!r}")
    try:
        measured = date.fromisoformat(fields["measured"]).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"measured must be a date YYYY-MM-DD, got {fields['measured']!r}") from None
    return {"cv_pct": cv, "df": df, "measured": measured}


def whole(text):
    """A whole number >= 1 from text (argparse type)."""
    value = non_negative(text)
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return int(value)


def text(value):
    """A non-empty text (argparse type)."""
    value = str(value)
    if not value:
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def add_sides(parser, check="exit 1 when any verdict is fail or invalid"):
    """``--baseline PATH`` (repeatable: the baseline side) and ``--check`` (its help: ``check``)."""
    parser.add_argument("--baseline", action="append", metavar="PATH",
                        help="a baseline run; repeat it for repeated runs (all form the baseline side)")
    parser.add_argument("--check", action="store_true", help=check)
    return parser
