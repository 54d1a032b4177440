"""equirl.runs.log.MetricsCSV: what a resumed run's metrics.csv keeps and gains."""

import csv

from equirl.runs.log import MetricsCSV


def _read(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def test_a_resumed_run_cuts_later_rows_and_keeps_columns_it_newly_logs(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsCSV(path, ("step",), "step")
    for step in (10, 20, 30):
        log.write({"step": step, "loss": step / 10}, last=("return/a",))
    # Resumed from step 20 by a version that also logs an episode length per body.
    resumed = MetricsCSV(path, ("step",), "step", resume_step=20)
    assert [r["step"] for r in resumed.kept] == [10.0, 20.0]
    resumed.write({"step": 30, "loss": 7.0, "return/a": 5.0, "length/a": 9.0}, last=("return/a", "length/a"))
    header, rows = _read(path)
    assert header == ["step", "loss", "return/a", "length/a"]
    assert [(r["step"], r["loss"], r["return/a"], r["length/a"]) for r in rows] == [
        ("10", "1.0", "", ""),
        ("20", "2.0", "", ""),
        ("30", "7.0", "5.0", "9.0"),
    ]
    # Later rows go on under the extended header.
    resumed.write({"step": 40, "loss": 8.0, "length/a": 11.0})
    header, rows = _read(path)
    assert len(header) == 4 and rows[-1] == {"step": "40", "loss": "8.0", "return/a": "", "length/a": "11.0"}
