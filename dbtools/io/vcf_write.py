"""Writing an annotated VCF: INFO key names and layouts, header lines, and the output file.

Two INFO layouts carry per-allele, per-model scores:

* ``keys``: three Float keys per model, ``DBT_<ID>_REF`` (Number=1), ``DBT_<ID>_ALT`` and
  ``DBT_<ID>_DIFF`` (Number=A), where ``<ID>`` is the model ID with every character other
  than a letter, digit or ``_`` turned into ``_`` (D00328.003 -> DBT_D00328_003_DIFF), so that
  keys match the VCF spec and read plainly in `bcftools filter -i` expressions.
* ``csq``: one String key ``DBT_CSQ`` (Number=.) in the style of VEP's CSQ: one
  ``Allele|Model|Ref|Alt|Diff|`` entry per ALT allele and model, comma-separated, with the
  format in the header's Description (`bcftools +split-vep -a DBT_CSQ` reads it; the last,
  empty field is named Consequence because split-vep requires one).

With p-values (`vareffect --pvalues`), each model also gets ``DBT_<ID>_REF_LOG10P`` (Number=1)
and ``DBT_<ID>_ALT_LOG10P`` (Number=A): -log10 of the p-value of the REF and ALT windows'
scores against the model's background; in the ``csq`` layout each entry gains the fields
``RefLog10P|AltLog10P`` before Consequence.

Outputs: '-' (plain VCF on stdout), ``.vcf``, ``.vcf.gz``/``.vcf.bgz`` (BGZF with a tabix
index beside it) and ``.bcf`` (a text spool converted by cyvcf2, with any contig, INFO, FILTER
or FORMAT the records use but the header lacks declared first, as BCF requires). Files are
written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import enum
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from dbtools.io.atomic import atomic_path
from dbtools.io.bgzip import open_indexed_text
from dbtools.errors import DbtoolsError, UsageError
from dbtools.io.vcf_read import VcfHeader

PREFIX = "DBT_"
CSQ_KEY = "DBT_CSQ"
MISMATCH_KEY = "DBT_REFMISMATCH"
# a trailing empty Consequence: bcftools +split-vep (1.16 at least) requires a field of that name
CSQ_FIELDS = ("Allele", "Model", "Ref", "Alt", "Diff", "Consequence")
CSQ_FIELDS_PVALUES = ("Allele", "Model", "Ref", "Alt", "Diff", "RefLog10P", "AltLog10P", "Consequence")


class InfoLayout(enum.StrEnum):
    """--info-layout: per-model INFO keys, one CSQ-style key, or keys up to KEYS_MAX_MODELS models."""

    AUTO = "auto"
    KEYS = "keys"
    CSQ = "csq"


LAYOUTS = tuple(InfoLayout)
KEYS_MAX_MODELS = 16  # auto layout: per-model keys up to this many models, one CSQ key beyond
MISSING = "."


def info_key(model_id: str) -> str:
    """The INFO key stem of a model: DBT_ + the ID with characters other than [A-Za-z0-9_] as '_'."""
    return PREFIX + re.sub(r"[^0-9A-Za-z_]", "_", model_id)


def model_keys(ids: list[str]) -> list[str]:
    """One distinct key stem per model (a clash after the mapping gets _2, _3, ...)."""
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        k = info_key(i)
        if k in seen:
            seen[k] += 1
            k = f"{k}_{seen[k]}"
        seen.setdefault(k, 1)
        out.append(k)
    return out


def choose_layout(layout: str, n_models: int) -> str:
    """'auto' is 'keys' for at most KEYS_MAX_MODELS models, else 'csq'."""
    if layout not in LAYOUTS:
        raise UsageError(f"--info-layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if layout == "auto":
        return "keys" if n_models <= KEYS_MAX_MODELS else "csq"
    return layout


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class ModelColumn:
    """What the header says about one model's scores."""

    id: str
    protein: str
    experiment: str
    window: int


class InfoFormatter:
    """Formats the INFO additions of records and the header lines that declare them."""

    def __init__(self, models: list[ModelColumn], layout: str, digits: int = 6, pvalues: bool = False):
        self.models = models
        self.layout = layout
        self.pvalues = pvalues
        self.keys = model_keys([m.id for m in models])
        self.fmt = f"%.{digits}f"
        self.ours = {MISMATCH_KEY, CSQ_KEY} | {k + s for k in self.keys
                                               for s in ("_REF", "_ALT", "_DIFF", "_REF_LOG10P", "_ALT_LOG10P")}

    def header_lines(self, version: str, command: str, settings: str) -> list[str]:
        lines = [f"##dbtools_version={version}", f"##dbtools_command={command}",
                 f"##dbtools_vareffect=<{settings}>"]
        for m, k in zip(self.models, self.keys):
            lines.append(f"##dbtools_model=<ID={m.id},Key={k},Protein={_quote(m.protein)},"
                         f"Experiment={_quote(m.experiment)},Window={m.window}>")
        lines.append(f'##INFO=<ID={MISMATCH_KEY},Number=0,Type=Flag,Description="REF differs from the genome; '
                     f'dbtools scored the windows with the genome\'s bases">')
        if self.layout == "csq":
            pv = (", RefLog10P and AltLog10P = -log10 p of each against the model's background"
                  if self.pvalues else "")
            fields = CSQ_FIELDS_PVALUES if self.pvalues else CSQ_FIELDS
            lines.append(f'##INFO=<ID={CSQ_KEY},Number=.,Type=String,Description="dbtools binding scores of the '
                         f'reference and alternative windows centred on the variant, and Diff = Alt - Ref{pv}, per '
                         f'ALT allele and model. Format: {"|".join(fields)}">')
            return lines
        for m, k in zip(self.models, self.keys):
            what = f"{m.id} ({m.protein}, {m.experiment})"
            lines += [
                f'##INFO=<ID={k}_REF,Number=1,Type=Float,Description="dbtools {what}: score of the '
                f'{m.window}-bp reference window centred on the variant">',
                f'##INFO=<ID={k}_ALT,Number=A,Type=Float,Description="dbtools {what}: score of the '
                f'{m.window}-bp window with each ALT allele applied, centred">',
                f'##INFO=<ID={k}_DIFF,Number=A,Type=Float,Description="dbtools {what}: ALT score - REF score">',
            ]
            if self.pvalues:
                lines += [
                    f'##INFO=<ID={k}_REF_LOG10P,Number=1,Type=Float,Description="dbtools {what}: -log10 p-value '
                    f'of the reference window\'s score against the model\'s background">',
                    f'##INFO=<ID={k}_ALT_LOG10P,Number=A,Type=Float,Description="dbtools {what}: -log10 p-value '
                    f'of each ALT window\'s score against the model\'s background">',
                ]
        return lines

    def info(self, old: str, alts: list[str], ref: np.ndarray | None, alt: list[np.ndarray | None],
             mismatch: bool, ref_log10p: np.ndarray | None = None,
             alt_log10p: list[np.ndarray | None] | None = None) -> str:
        """The INFO column: `old` without keys of ours, then the flag and the scores.

        `ref` [M] is the REF window's scores (None: record not scored); alt[i] [M] those of
        ALT allele i (None: allele not scored); with p-values, `ref_log10p` and `alt_log10p`
        hold -log10 p in the same shapes.
        """
        parts = [] if old in ("", MISSING) else [p for p in old.split(";") if p.split("=", 1)[0] not in self.ours]
        if mismatch:
            parts.append(MISMATCH_KEY)
        if ref is not None:
            lp = (ref_log10p, alt_log10p) if self.pvalues else None
            parts.extend(self._csq(alts, ref, alt, lp) if self.layout == "csq" else self._keys(ref, alt, lp))
        return ";".join(parts) if parts else MISSING

    def _texts(self, values: list[np.ndarray | None], n: int) -> list[list[str]]:
        """Per allele, its M values as text ('.' for an allele not scored)."""
        return [[MISSING] * n if v is None else [self.fmt % x for x in v.tolist()] for v in values]

    def _keys(self, ref: np.ndarray, alt: list[np.ndarray | None], log10p=None) -> list[str]:
        ref_t = [self.fmt % v for v in ref.tolist()]
        alt_t = self._texts(alt, len(ref_t))
        diff_t = self._texts([None if a is None else a - ref for a in alt], len(ref_t))
        if log10p is not None:
            ref_lp_t = [self.fmt % v for v in log10p[0].tolist()]
            alt_lp_t = self._texts(log10p[1], len(ref_t))
        out = []
        for j, k in enumerate(self.keys):
            out.append(f"{k}_REF={ref_t[j]}")
            out.append(f"{k}_ALT=" + ",".join(t[j] for t in alt_t))
            out.append(f"{k}_DIFF=" + ",".join(t[j] for t in diff_t))
            if log10p is not None:
                out.append(f"{k}_REF_LOG10P={ref_lp_t[j]}")
                out.append(f"{k}_ALT_LOG10P=" + ",".join(t[j] for t in alt_lp_t))
        return out

    def _csq(self, alts: list[str], ref: np.ndarray, alt: list[np.ndarray | None], log10p=None) -> list[str]:
        fmt = self.fmt
        ref_t = [fmt % v for v in ref.tolist()]
        entries = []
        for i, (allele, a) in enumerate(zip(alts, alt)):
            if a is None:
                continue
            extra = ([f"{fmt % r}|{fmt % x}|" for r, x in zip(log10p[0].tolist(), log10p[1][i].tolist())]
                     if log10p is not None else [""] * len(ref_t))
            for m, r, av, d, e in zip(self.models, ref_t, a.tolist(), (a - ref).tolist(), extra):
                entries.append(f"{allele}|{m.id}|{r}|{fmt % av}|{fmt % d}|{e}")
        return [f"{CSQ_KEY}=" + ",".join(entries)] if entries else []


def output_kind(path: str) -> str:
    """'vcf' (also '-'), 'vcf.gz' or 'bcf', from the output name."""
    if path == "-":
        return "vcf"
    low = path.lower()
    if low.endswith(".bcf"):
        return "bcf"
    if low.endswith((".vcf.gz", ".vcf.bgz", ".gz", ".bgz")):
        return "vcf.gz"
    return "vcf"


class _Undeclared:
    """Contigs, INFO/FORMAT keys and FILTERs that records use but the header lacks (needed for BCF)."""

    def __init__(self, header: VcfHeader):
        self.declared = {k: set(v) for k, v in header.declared.items()}
        self.declared["FILTER"].add("PASS")
        self.found: dict[str, list[str]] = {k: [] for k in self.declared}

    def _see(self, kind: str, name: str) -> None:
        if name and name != MISSING and name not in self.declared[kind]:
            self.declared[kind].add(name)
            self.found[kind].append(name)

    def see(self, line: str) -> None:
        f = line.split("\t", 9)
        self._see("contig", f[0])
        for flt in f[6].split(";"):
            self._see("FILTER", flt)
        for part in f[7].split(";"):
            self._see("INFO", part.split("=", 1)[0])
        if len(f) > 8:
            for key in f[8].split(":"):
                self._see("FORMAT", key)

    def lines(self) -> list[str]:
        out = [f"##contig=<ID={c}>" for c in self.found["contig"]]
        out += [f'##FILTER=<ID={x},Description="(not declared in the input)">' for x in self.found["FILTER"]]
        out += [f'##INFO=<ID={x},Number=.,Type=String,Description="(not declared in the input)">'
                for x in self.found["INFO"]]
        out += [f'##FORMAT=<ID={x},Number=.,Type=String,Description="(not declared in the input)">'
                for x in self.found["FORMAT"]]
        return out


class VcfWriter:
    """Writes header lines then record lines; `close_ok()` finishes the file (index, BCF conversion)."""

    def __init__(self, stream: TextIO, kind: str):
        self.stream = stream
        self.kind = kind
        self.undeclared: _Undeclared | None = None
        self.meta: list[str] = []
        self.columns = ""

    def header(self, header: VcfHeader, extra: list[str]) -> None:
        self.meta = header.meta + extra
        self.columns = header.columns
        if self.kind == "bcf":  # the header is written last, once every name the records use is known
            self.undeclared = _Undeclared(VcfHeader(self.meta, self.columns))
        else:
            self.stream.write("\n".join(self.meta + [self.columns]) + "\n")

    def records(self, lines: list[str]) -> None:
        if self.undeclared is not None:
            for line in lines:
                self.undeclared.see(line)
        if lines:
            self.stream.write("\n".join(lines) + "\n")


def _bcf_from_spool(body: Path, writer: VcfWriter, out: Path, name: str) -> None:
    """Header (with late declarations) + spooled records -> BCF, via cyvcf2 (htslib)."""
    import cyvcf2

    meta = writer.meta
    extra = writer.undeclared.lines() if writer.undeclared else []
    if extra:  # before the first line that is not ##fileformat
        meta = meta[:1] + extra + meta[1:]
    with tempfile.NamedTemporaryFile("w", dir=out.parent, prefix=f".{out.name}.", suffix=".vcf",
                                     delete=False) as full:
        full.write("\n".join(meta + [writer.columns]) + "\n")
        with open(body) as src:
            shutil.copyfileobj(src, full)
    try:
        vin = cyvcf2.VCF(full.name)
        vout = cyvcf2.Writer(str(out), vin, mode="wb")
        for rec in vin:
            vout.write_record(rec)
        vout.close()
        vin.close()
    except (OSError, ValueError) as e:
        raise DbtoolsError(f"{name}: cannot write BCF: {e}") from None
    finally:
        os.unlink(full.name)


@contextmanager
def open_vcf_output(path: str) -> Iterator[VcfWriter]:
    """A VcfWriter for '-', .vcf, .vcf.gz (+ .tbi) or .bcf; files appear only when complete."""
    kind = output_kind(path)
    if path == "-":
        yield VcfWriter(sys.stdout, "vcf")
        sys.stdout.flush()
        return
    if kind == "vcf":
        with atomic_path(path, ".vcf") as tmp, open(tmp, "w") as fh:
            yield VcfWriter(fh, kind)
        return
    if kind == "vcf.gz":
        with open_indexed_text(path, "vcf") as stream:
            yield VcfWriter(stream, kind)
        return
    with atomic_path(path, ".bcf") as tmp:
        body = tmp.with_name(tmp.name + ".body")
        try:
            with open(body, "w") as fh:
                writer = VcfWriter(fh, kind)
                yield writer
            _bcf_from_spool(body, writer, tmp, path)
        finally:
            if body.exists():
                body.unlink()
