"""Model banks shipped with dbtools (package data: see models/README.md)."""
