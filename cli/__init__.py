"""The thin Typer layer of dbtools: options, I/O wiring and progress; logic lives in `dbtools`."""
