"""README's quoted test time is the one measured (benchmarks/suite_time.py), on a green run, on the cores it names."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = {1: "one", 2: "two", 4: "four", 8: "eight", 16: "sixteen"}


def test_readme_quotes_the_measured_suite_time():
    measured = json.loads((ROOT / "benchmarks" / "results" / "suite-time.json").read_text())
    readme = (ROOT / "README.md").read_text()
    quoted = re.search(r"takes about (\d+) minutes on (\w+) CPU cores \(([^)]*)\)", readme)
    assert quoted, "README's Set up no longer quotes the whole suite's time"
    minutes, cores, cpu = int(quoted[1]), quoted[2], quoted[3]
    assert measured["failed"] == 0 and measured["errors"] == 0 and measured["passed"] > 100, measured["summary"]
    assert minutes == measured["minutes"] == round(measured["seconds"] / 60)
    assert cores == WORDS[measured["cores"]] and cpu == measured["cpu"]


def test_suite_time_reads_pytests_summary_line(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from suite_time import outcome_counts

    counts = outcome_counts("3 failed, 412 passed, 4 skipped, 1 error in 905.12s (0:15:05)")
    assert counts == {"passed": 412, "failed": 3, "errors": 1, "skipped": 4, "deselected": 0}
