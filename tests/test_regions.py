"""BED parsing: regions in order, malformed lines named."""

from __future__ import annotations

import pytest

from dbtools.errors import DbtoolsError
from dbtools.io.regions import read_regions


def test_regions_in_order_with_names(tmp_path):
    bed = tmp_path / "r.bed"
    bed.write_text("track name=x\n#c\nchr20\t10\t20\tpeak1\t5\n20 30 30\n")
    rs = list(read_regions(str(bed)))
    assert [(r.contig, r.start, r.end, r.name, r.line) for r in rs] == [
        ("chr20", 10, 20, "peak1", 3), ("20", 30, 30, "20:30-30", 4)]


@pytest.mark.parametrize("line,message", [
    ("chr1\t5\n", "line 1: expected"),
    ("chr1\tx\t9\n", "line 1: start and end must be whole numbers"),
    ("chr1\t9\t5\n", "line 1: start 9 is after end 5"),
    ("chr1\t-1\t5\n", "line 1: start -1 is negative"),
])
def test_malformed_lines_are_named(tmp_path, line, message):
    bed = tmp_path / "bad.bed"
    bed.write_text(line)
    with pytest.raises(DbtoolsError, match=f"bad.bed: {message}"):
        list(read_regions(str(bed)))
