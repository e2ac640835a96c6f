"""Variant effects: reference and alternative windows scored, written into the VCF."""
