"""`dbtools vareffect`: each VCF allele's effect on binding, for every model of a bank.

For a record at POS with REF of length R (0-based start s = POS - 1), every allele X (the
genome's own bases at [s, s+R) for the reference, each ALT for the alternatives) is placed in
a window of exactly W bp with X centred: (W - |X|) // 2 genome bases before s, X, then the
genome bases after s + R that fill the window to W. An allele longer than W is cut to its
central W bases. So an SNV sits at offset (W - 1) // 2 in both windows, and an indel's
windows stay W bp, each centred on its own allele. Windows past a contig end are padded
with N. Each window is scored exactly as `dbtools score` scores that sequence.

Records stream through in batches (memory bounded by the batch, not the VCF), in order.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dbtools import __version__
from dbtools.io.atomic import check_writable
from dbtools.io.encode import encode
from dbtools.errors import DbtoolsError, UsageError
from dbtools.engine.bank_engine import BankEngine
from dbtools.io.genome import Genome
from dbtools.vareffect.pairs import score_pairs
from dbtools.engine.options import ScoreOptions
from dbtools.score import score_codes
from dbtools.bank.selection import open_selected
from dbtools.io.vcf_read import VcfRecord, is_sequence_allele, open_vcf
from dbtools.io.vcf_write import InfoFormatter, ModelColumn, choose_layout, open_vcf_output
from dbtools.significance.lookup import background_tables
from dbtools.significance.tables import Tables, log10_pvalues



class RefMismatch(enum.StrEnum):
    """--ref-mismatch: what to do with a record whose REF differs from the genome."""

    WARN = "warn"
    SKIP = "skip"
    ERROR = "error"


REF_MISMATCH_POLICIES = tuple(RefMismatch)
_BLOCK = 1 << 20  # genome bases fetched at a time
# memory a batch of records may take: records are batched by their window bases, not counted, so a
# long --window means fewer records a batch (1 GiB held 1,000 records of 1-Mbp windows under 2 GB)
_BATCH_BYTES = 1 << 30
_BYTES_PER_BASE = 24  # window text, its codes and their int64 copies in the scorer
_MARGIN = 1 << 14  # bases kept before a block's first request (window flanks)


def centred_window(fetch: Callable[[int, int], str], start: int, ref_len: int, allele: str, width: int) -> str:
    """`allele` replacing [start, start+ref_len) of the genome, centred in a `width`-bp window.

    `fetch(a, b)` returns genome bases [a, b) (N past the contig's ends).
    """
    n = len(allele)
    if n >= width:
        cut = (n - width) // 2
        return allele[cut:cut + width]
    left = (width - n) // 2
    right = width - n - left
    return fetch(start - left, start) + allele + fetch(start + ref_len, start + ref_len + right)


class _Reference:
    """Genome bases in blocks of 1 Mb (records come mostly sorted), upper case."""

    def __init__(self, genome: Genome):
        self.genome = genome
        self.contig: str | None = None
        self.lo = self.hi = 0
        self.seq = ""

    def fetch(self, contig: str, start: int, end: int) -> str:
        if contig != self.contig or start < self.lo or end > self.hi:
            self.contig, self.lo = contig, start - _MARGIN
            self.hi = max(end, self.lo + _BLOCK)
            self.seq = self.genome.fetch(contig, self.lo, self.hi).upper()
        return self.seq[start - self.lo:end - self.lo]


def ref_mismatch(vcf_ref: str, genome_ref: str) -> bool:
    """True when REF disagrees with the genome at some base both call as A/C/G/T."""
    vcf_ref = vcf_ref.upper()
    if vcf_ref == genome_ref:
        return False
    return any(a != b and a in "ACGT" and b in "ACGT" for a, b in zip(vcf_ref, genome_ref))


@dataclass
class VarEffectSummary:
    """What happened to the records, for the summary line on stderr."""

    records: int = 0
    annotated: int = 0
    alleles_scored: int = 0
    mismatches: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> records passed through unannotated
    alleles_skipped: Counter = field(default_factory=Counter)  # reason -> ALT alleles left missing
    missing_contigs: Counter = field(default_factory=Counter)
    layout: str = ""
    models: int = 0

    def lines(self) -> list[str]:
        models = f"{self.models} model{'' if self.models == 1 else 's'}"
        out = [f"{self.records:,} records, {self.annotated:,} annotated; {self.alleles_scored:,} ALT alleles scored "
               f"with {models} ({self.layout} layout); {self.mismatches:,} REF mismatches"]
        if self.skipped:
            out.append("records passed through unannotated: " + ", ".join(
                f"{n:,} {why}" for why, n in self.skipped.most_common()))
        if self.alleles_skipped:
            out.append("ALT alleles not scored: " + ", ".join(
                f"{n:,} {why}" for why, n in self.alleles_skipped.most_common()))
        if self.missing_contigs:
            shown = ", ".join(f"{c} ({n:,})" for c, n in self.missing_contigs.most_common(10))
            out.append(f"contigs not in the genome: {shown}")
        return out


def _allele_skip_reason(allele: str) -> str | None:
    if is_sequence_allele(allele):
        return None
    if allele == "*":
        return "'*' (deletion spanning)"
    if allele.startswith("<"):
        return "symbolic (<...>)"
    if "[" in allele or "]" in allele:
        return "breakend"
    return "not a sequence"


class VariantScorer:
    """Scores reference and alternative windows with a bank; models grouped by window length.

    `pairs` (default): an alternative's windows that do not see its change are taken from its
    reference (`vareffect.pairs`); False scores every window separately (the plain baseline).
    """

    def __init__(self, bank, device: str | torch.device, options: ScoreOptions, window: int | None,
                 pairs: bool = True):
        self.options = options
        self.pairs = pairs
        self.n_models = len(bank)
        self.groups = [(w, np.array(idx), BankEngine(bank.subset(idx), device))
                       for w, idx in bank.by_genomic_window(window).items()]
        self.widths = sorted({w for w, _, _ in self.groups})

    def bytes_per_record_allele(self) -> int:
        """Memory one window sequence of every width takes while it is scored: its bases, and, off
        the fused CPU kernel, each window's score per model of the largest group (both strands)."""
        fused = all(e.fused_scores(g) for _, _, e in self.groups for g in e.groups)
        per_base = _BYTES_PER_BASE + (0 if fused else 8 * max(g.size for _, _, e in self.groups for g in e.groups))
        return sum(self.widths) * per_base

    def score(self, ref_windows: dict[int, list[str]], alt_windows: dict[int, list[str]], owner: np.ndarray):
        """Window strings per width (alt_windows[w][i] a variant of ref_windows[w][owner[i]])
        -> (ref [n, M], alt [k, M]) float32 scores."""
        n = len(next(iter(ref_windows.values())))
        k = len(next(iter(alt_windows.values())))
        ref = np.empty((n, self.n_models), dtype=np.float32)
        alt = np.empty((k, self.n_models), dtype=np.float32)
        for w, idx, engine in self.groups:
            if self.pairs:
                ref[:, idx], alt[:, idx] = score_pairs(engine, _codes(ref_windows[w], w), _codes(alt_windows[w], w),
                                                       owner, self.options)
            else:
                s = score_codes(engine, list(_codes(ref_windows[w] + alt_windows[w], w)), self.options,
                                batch_size=1024)
                ref[:, idx] = s[:n]
                alt[:, idx] = s[n:]
        return ref, alt


def _codes(windows: list[str], width: int) -> np.ndarray:
    """[n, width] int8 codes of equal-length windows (validated by `encode`)."""
    if not windows:
        return np.empty((0, width), dtype=np.int8)
    return encode("".join(windows), "window").reshape(len(windows), width)


@dataclass
class _Plan:
    """One record's fate: scored (contig, start, alleles to score) or passed through."""

    record: VcfRecord
    contig: str | None = None
    start: int = 0
    genome_ref: str = ""
    mismatch: bool = False
    alleles: list[int] = field(default_factory=list)  # indices into record.alts that get scored


class _Annotator:
    """Decides each record's plan, builds its windows and formats its INFO column."""

    def __init__(self, genome: Genome, scorer: VariantScorer, formatter: InfoFormatter, policy: str,
                 summary: VarEffectSummary, warn: Callable[[str], None], tables: Tables | None = None):
        self.tables = tables  # the models' backgrounds when -log10 p is written
        self.genome = genome
        self.reference = _Reference(genome)
        self.scorer = scorer
        self.formatter = formatter
        self.policy = policy
        self.summary = summary
        self.warn = warn
        self.contig_of: dict[str, str | None] = {}
        self.widths = scorer.widths

    def plan(self, rec: VcfRecord) -> _Plan:
        s = self.summary
        s.records += 1
        p = _Plan(rec)
        chrom = rec.chrom
        if chrom not in self.contig_of:
            self.contig_of[chrom] = self.genome.resolve(chrom)
        contig = self.contig_of[chrom]
        if contig is None:
            s.missing_contigs[chrom] += 1
            s.skipped["on contigs not in the genome"] += 1
            return p
        start = rec.pos - 1
        if rec.pos == 0:  # VCF's telomere position, before the first base: no window to centre
            reason = "with POS 0 (before the contig's first base)"
            if not s.skipped[reason]:
                self.warn(f"{rec.where} ({chrom}:0): POS 0 is before the contig's first base; passed through "
                          f"unannotated")
            s.skipped[reason] += 1
            return p
        if start >= self.genome.sizes[contig]:
            s.skipped["with POS past the contig's end"] += 1
            return p
        ref_len = len(rec.ref)
        genome_ref = self.reference.fetch(contig, start, start + ref_len)
        if ref_mismatch(rec.ref, genome_ref):
            s.mismatches += 1
            where = f"{rec.where} ({chrom}:{rec.pos})"
            if self.policy == "error":
                raise DbtoolsError(f"{where}: REF {rec.ref!r} differs from the genome's {genome_ref!r} "
                                   f"(--ref-mismatch error)")
            p.mismatch = True
            if s.mismatches <= 3:
                self.warn(f"{where}: REF {rec.ref!r} differs from the genome's {genome_ref!r}"
                          + ("; scored with the genome's bases" if self.policy == "warn" else "; not scored"))
            if self.policy == "skip":
                s.skipped["REF mismatch (--ref-mismatch skip)"] += 1
                return p
        for i, allele in enumerate(rec.alts):
            why = _allele_skip_reason(allele)
            if why:
                s.alleles_skipped[why] += 1
            else:
                p.alleles.append(i)
        if not rec.alts:
            s.alleles_skipped["missing ALT ('.')"] += 1
        if not p.alleles:
            s.skipped["with no sequence ALT allele"] += 1
            return p
        p.contig, p.start, p.genome_ref = contig, start, genome_ref
        return p

    def annotate(self, records: list[VcfRecord]) -> list[str]:
        plans = [self.plan(r) for r in records]
        scored = [p for p in plans if p.alleles]
        ref_scores = alt_scores = None
        if scored:
            ref_w: dict[int, list[str]] = {w: [] for w in self.widths}
            alt_w: dict[int, list[str]] = {w: [] for w in self.widths}
            owner: list[int] = []
            for r, p in enumerate(scored):
                owner.extend([r] * len(p.alleles))
                fetch = (lambda a, b, c=p.contig: self.reference.fetch(c, a, b))
                R = len(p.record.ref)
                for w in self.widths:
                    ref_w[w].append(centred_window(fetch, p.start, R, p.genome_ref, w))
                    for i in p.alleles:
                        alt_w[w].append(centred_window(fetch, p.start, R, p.record.alts[i].upper(), w))
            ref_scores, alt_scores = self.scorer.score(ref_w, alt_w, np.array(owner, dtype=np.int64))
            if self.tables is not None:
                ref_lp, alt_lp = (0.0 - log10_pvalues(torch.from_numpy(s), self.tables).numpy()
                                  for s in (ref_scores, alt_scores))
        lines = []
        r = a = 0
        fmt = self.formatter
        for p in plans:
            rec = p.record
            f = rec.fields
            if p.alleles:
                alts: list[np.ndarray | None] = [None] * len(rec.alts)
                alts_lp: list[np.ndarray | None] = [None] * len(rec.alts)
                for i in p.alleles:
                    alts[i] = alt_scores[a]
                    if self.tables is not None:
                        alts_lp[i] = alt_lp[a]
                    a += 1
                f[7] = fmt.info(f[7], rec.alts, ref_scores[r], alts, p.mismatch,
                                ref_lp[r] if self.tables is not None else None, alts_lp)
                r += 1
                self.summary.annotated += 1
                self.summary.alleles_scored += len(p.alleles)
            else:
                f[7] = fmt.info(f[7], rec.alts, None, [], p.mismatch)
            lines.append("\t".join(f))
        return lines


def settings_text(window: int | None, options: ScoreOptions, layout: str, policy: str, genome: str) -> str:
    ws = "default" if options.window_size is None else str(options.window_size)
    return (f"Window={window or 'model'},WindowSize={ws},Average={str(options.average).lower()},"
            f"Layout={layout},RefMismatch={policy},Genome=\"{genome}\"")


def vareffect(vcf: str, genome_path: str, out: str, *, bank: str | None, models: list[str] | None,
              window: int | None, options: ScoreOptions, layout: str = "auto", ref_mismatch_policy: str = "warn",
              device: torch.device | str = "cpu", command: str = "dbtools vareffect", batch_size: int = 1024,
              progress: Callable[[int], None] | None = None,
              warn: Callable[[str], None] = lambda msg: None, pvalues: bool = False) -> VarEffectSummary:
    """Annotate every record of `vcf` with its alleles' scores; write the VCF to `out` ('-' = stdout).
    With `pvalues`, also -log10 p of the REF and ALT windows against each model's background.

    Raises DbtoolsError when no record lies on a contig of the genome.
    """
    if ref_mismatch_policy not in REF_MISMATCH_POLICIES:
        raise UsageError(f"--ref-mismatch must be one of {', '.join(REF_MISMATCH_POLICIES)}")
    if window is not None and window < 1:
        raise UsageError("--window must be at least 1")
    if out != "-":
        check_writable(out)
        if Path(out).is_dir():
            raise DbtoolsError(f"{out}: cannot write: it is a folder (give a file name ending .vcf, .vcf.gz or .bcf)")
    genome = Genome(genome_path)
    longest = max(genome.sizes.values())
    if window is not None and window > longest:
        genome.close()
        raise UsageError(f"--window {window:,} is longer than the longest contig of {genome_path} "
                         f"({longest:,} bp): the windows would be mostly N")
    selected = open_selected(bank, models)
    tables = background_tables(selected, options, window, where="--pvalues") if pvalues else None
    scorer = VariantScorer(selected, device, options, window)
    columns = [ModelColumn(m.info.id, m.info.protein, m.info.experiment, m.info.genomic_window(window))
               for m in selected.models]
    layout = choose_layout(layout, len(selected))
    formatter = InfoFormatter(columns, layout, pvalues=pvalues)
    summary = VarEffectSummary(layout=layout, models=len(selected))
    with genome, open_vcf(vcf) as (header, records):
        # drop header lines of an earlier dbtools run whose keys this run writes again
        ours = formatter.ours
        header.meta = [ln for ln in header.meta if not (
            ln.startswith("##dbtools_") or (ln.startswith("##INFO=<ID=") and ln[11:].split(",", 1)[0] in ours))]
        annotator = _Annotator(genome, scorer, formatter, ref_mismatch_policy, summary, warn, tables)
        extra = formatter.header_lines(__version__, command,
                                       settings_text(window, options, layout, ref_mismatch_policy, genome_path))
        with open_vcf_output(out) as writer:
            writer.header(header, extra)
            batch: list[VcfRecord] = []
            per_window, batch_bytes = scorer.bytes_per_record_allele(), 0
            for rec in records:
                cost = per_window * (1 + len(rec.alts))
                if batch and (len(batch) >= batch_size or batch_bytes + cost > _BATCH_BYTES):
                    writer.records(annotator.annotate(batch))
                    if progress:
                        progress(len(batch))
                    batch, batch_bytes = [], 0
                batch.append(rec)
                batch_bytes += cost
            if batch:
                writer.records(annotator.annotate(batch))
                if progress:
                    progress(len(batch))
            matched = summary.records - summary.missing_contigs.total()
            if matched == 0:
                where = "has no records" if summary.records == 0 else \
                    f"has no record on a contig of {genome_path} (contigs: {', '.join(summary.missing_contigs)})"
                raise DbtoolsError(f"{'stdin' if vcf == '-' else vcf} {where}")
    return summary
