"""Precision and recall of the risk-language detector for asserted-current
risk on the labelled sentences in tests/clinical/data/risk_sentences.jsonl,
and what a draft scan costs. Prints figures, asserts nothing; the last line is
the headline.

    .venv/bin/python bench/risk.py [-v]   (-v lists every miss and false alarm)
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notes.risk_language import risk_pipeline, risk_scan  # noqa: E402

DATA = ROOT / "tests" / "clinical" / "data" / "risk_sentences.jsonl"


def evaluate(rows):
    tp = fp = fn = tn = 0
    errors = []
    for row in rows:
        mentions = risk_scan(row["sentence"])
        found = any(m.is_current for m in mentions)
        expected = row["label"] == "asserted"
        if found and expected:
            tp += 1
        elif found:
            fp += 1
            errors.append(("false alarm", row, mentions))
        elif expected:
            fn += 1
            errors.append(("missed", row, mentions))
        else:
            tn += 1
    recall = 100.0 * tp / (tp + fn) if tp + fn else 100.0
    precision = 100.0 * tp / (tp + fp) if tp + fp else 100.0
    return recall, precision, (tp, fp, fn, tn), errors


def main() -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    t0 = time.perf_counter()
    risk_pipeline()
    build = time.perf_counter() - t0
    recall, precision, (tp, fp, fn, tn), errors = evaluate(rows)
    if "-v" in sys.argv:
        for kind, row, mentions in errors:
            print(f"{kind}: [{row['label']}] {row['sentence']}  ->  {[(m.text, m.label) for m in mentions]}")
    draft = " ".join(row["sentence"] for row in rows[:12])  # a long-ish draft: a dozen risk-laden sentences
    runs = 50
    t0 = time.perf_counter()
    for _ in range(runs):
        risk_scan(draft)
    per_draft = (time.perf_counter() - t0) / runs
    # At the intake limit: 1 MB of distinct clinical prose (only sentences that
    # might hold risk language go through spaCy).
    prose = " ".join(
        f"Session {i}: client reports low mood, poor sleep and worry about work {i}." for i in range(14000)
    )
    t0 = time.perf_counter()
    risk_scan(prose)
    big = time.perf_counter() - t0
    print(f"sentences {len(rows)} (asserted {tp + fn}, other labels {fp + tn})")
    print(f"true positives {tp}, false alarms {fp}, missed {fn}, true negatives {tn}")
    print(
        f"pipeline build {build * 1000:.0f} ms once per process; "
        f"scan of a {len(draft)}-character draft {per_draft * 1000:.1f} ms"
    )
    print(f"scan of {len(prose) // 1024} KB of prose without risk words {big * 1000:.0f} ms")
    print(f"recall {recall:.1f} % precision {precision:.1f} %")


if __name__ == "__main__":
    main()
