"""pysam with htslib's own logging off: its `[E::...]` lines would be a second, cryptic report of
a problem that dbtools states in its one error line (or, for a missing BCF index, no problem)."""

from __future__ import annotations


def quiet_pysam():
    """The pysam module, htslib's verbosity set to 0 (errors still reach dbtools as exceptions)."""
    import pysam

    pysam.set_verbosity(0)
    return pysam
