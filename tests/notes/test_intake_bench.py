"""bench/intake.py runs end to end and prints both rates and the ratio on its
last line (the figures themselves are for people, not assertions)."""

import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "intake.py"


def test_the_bench_prints_both_rates_and_the_ratio_last():
    env = {**os.environ, "BENCH_INTAKE_DB": f"{os.environ.get('PSYFI_TEST_DB', 'test_psyfi')}_bench_intake"}
    out = subprocess.run(
        [sys.executable, str(BENCH), "--requests", "6", "--rounds", "1", "--workers", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"intake [\d.]+/s, bare [\d.]+/s, ratio [\d.]+ \(target >= 0\.5\)", last), last
