"""The prepared GPU check runs end to end before anyone spends GPU time on it (CPU smoke)."""

from __future__ import annotations

import pytest

from benchmarks import gpu_check
from tests.helpers.densepose import MISSING_REASON, PARITY


@pytest.mark.slow
def test_every_part_runs_or_says_why_not(tmp_path):
    if not (PARITY / "make_weights.py").is_file():
        pytest.skip(MISSING_REASON)
    out = tmp_path / "table.md"
    code = gpu_check.main(["--cpu-smoke", "--parity", str(PARITY), "--out", str(out)])
    table = out.read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| part")]
    statuses = {line.split(" | ")[0][2:]: line.split(" | ")[1] for line in rows}
    assert code == 0 and "FAIL" not in statuses.values(), table
    assert len(rows) >= 20, "every part has its row"
    for part in (
        "finetune 2+2 steps, LoRA 8",
        "DensePose precision on a parity image",
        "render 1 PNDM, turbo 3",
    ):
        assert statuses[part] == "ok", table
    skipped = [line for line in rows if " | SKIP | " in line]
    assert all(line.rstrip(" |").split(" | ")[2] for line in skipped), "a skipped part says why"
