"""Genome scans: every model over every window of a genome, written as tracks or hits."""
