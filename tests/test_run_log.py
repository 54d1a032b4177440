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


def _write_metrics(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_curve_windows_weight_the_mean_return_by_episodes(tmp_path, capsys):
    from equirl.cli import main
    from equirl.runs.curve import read_metrics, windows

    rows = [
        # 1 episode of 100 then 3 of 200 in the first window: (100 + 3 * 200) / 4 = 175.
        {
            "env_steps": 5000,
            "wall_seconds": 60,
            "return/mean": 100,
            "episode_length/mean": 50,
            "episodes": 1,
            "return/a": 100,
            "episode_length/a": 50,
            "q/mean": 10,
        },
        {
            "env_steps": 10000,
            "wall_seconds": 120,
            "return/mean": 200,
            "episode_length/mean": 90,
            "episodes": 3,
            "return/a": 200,
            "episode_length/a": 90,
            "q/mean": 20,
        },
        # A row with no finished episode does not count towards the return.
        {
            "env_steps": 15000,
            "wall_seconds": 180,
            "return/mean": "",
            "episode_length/mean": "",
            "episodes": 0,
            "return/a": "",
            "episode_length/a": "",
            "q/mean": 30,
        },
    ]
    _write_metrics(tmp_path / "metrics.csv", rows)
    file, parsed = read_metrics(tmp_path)  # a run directory reads its metrics.csv
    table = windows(parsed, 10_000, ["return/mean", "episode_length/mean", "return/a", "q/mean"])
    assert [w["env_steps"] for w in table] == [10_000, 20_000]
    assert table[0]["return/mean"] == 175 and table[0]["episode_length/mean"] == 80 and table[0]["episodes"] == 4
    assert table[0]["return/a"] == 150  # per-body columns: the mean of the rows
    assert table[1]["q/mean"] == 30 and table[1]["episodes"] == 0
    assert table[1]["return/mean"] != table[1]["return/mean"]  # nan: no episode ended
    assert main(["curve", str(file), "--window", "10000", "--bodies", "--critic"]) == 0
    out = capsys.readouterr().out
    assert "175 / 80" in out and "10k" in out and "20k" in out


def test_curve_names_a_missing_or_foreign_file(tmp_path, capsys):
    from equirl.cli import main

    assert main(["curve", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such metrics file" in capsys.readouterr().err
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert main(["curve", str(tmp_path / "other.csv")]) == 2
    assert "no 'env_steps' column" in capsys.readouterr().err
