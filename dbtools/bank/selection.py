"""Model selection shared by every command: IDs, proteins, experiment types, species, @files."""

from __future__ import annotations

from pathlib import Path

from dbtools.bank.store import Bank, ModelInfo
from dbtools.errors import DbtoolsError, UsageError

_FIELDS = {
    "id": lambda i: [i.id],
    "protein": lambda i: [i.protein],
    "type": lambda i: [i.experiment, i.protein_type],
    "species": lambda i: [i.species],
    "family": lambda i: [i.family],
}


def expand_selectors(selectors: list[str] | None) -> list[str]:
    """Split comma lists and read '@file' (one selector per line, '#' comments)."""
    out: list[str] = []
    for sel in selectors or []:
        if sel.startswith("@"):
            path = Path(sel[1:])
            try:
                lines = path.read_text().splitlines()
            except OSError as e:
                raise UsageError(f"{path}: cannot read selector file ({e.strerror or e})") from None
            out.extend(expand_selectors([ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]))
        else:
            out.extend(s.strip() for s in sel.split(",") if s.strip())
    return out


def _matches(info: ModelInfo, selector: str) -> bool:
    key, sep, value = selector.partition(":")
    if sep and key.lower() in _FIELDS:
        value = value.strip().casefold()
        return any(v.casefold() == value for v in _FIELDS[key.lower()](info))
    return info.id == selector or info.protein.casefold() == selector.casefold()


def select_models(bank: Bank, selectors: list[str] | None) -> list[int]:
    """Indices of the models `selectors` name, in selector order without repeats; all if none.

    A selector is an ID (D00328.003), a protein (CTCF: all its models), or field:value with
    field one of id, protein, type (experiment or protein type: ChIP-seq, PBM, TF, RBP),
    species, family; '@file' reads one selector per line.
    """
    expanded = expand_selectors(selectors)
    if not expanded:
        return list(range(len(bank)))
    chosen: list[int] = []
    seen: set[int] = set()
    for sel in expanded:
        hits = [i for i, m in enumerate(bank.models) if _matches(m.info, sel)]
        if not hits:
            raise UsageError(f"no model in the bank matches '{sel}' (list them with `dbtools models`)")
        for i in hits:
            if i not in seen:
                seen.add(i)
                chosen.append(i)
    return chosen


def open_selected(bank_path: str | None, selectors: list[str] | None) -> Bank:
    """Load a bank (the shipped default when `bank_path` is None) and keep the selected models."""
    from dbtools.bank.store import default_bank_path, load_bank

    path = bank_path if bank_path else default_bank_path()
    bank = load_bank(path)
    if not bank.models:
        raise DbtoolsError(f"{path}: the bank has no models")
    return bank.subset(select_models(bank, selectors))
