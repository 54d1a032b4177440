"""benchmarks/results_report.py: results/README.md from the results files, published numbers beside ours."""

import importlib.util
import json
import re

from helpers.common import REPO, reference_file


def _report_module():
    spec = importlib.util.spec_from_file_location("results_report", REPO / "benchmarks" / "results_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_published_zero_shot_numbers_match_the_spec():
    report = _report_module()
    text = reference_file("SPEC.md").read_text()
    # e.g. "walker_3 276.2±17.4 / 207.0±52.7 / 56.8±15.1"
    found = {
        short: [(float(m), float(s)) for m, s in re.findall(r"(\d+\.\d)±(\d+\.\d)", triple)]
        for short, triple in re.findall(r"(\w+_\d+)\s+((?:\d+\.\d±\d+\.\d(?:\s*/\s*)?){3})", text)
    }
    assert len(found) == 6
    for body, numbers in report.PUBLISHED_ZERO_SHOT.items():
        short = "_".join(body.split("_")[:2])
        assert [numbers[m] for m in report.PUBLISHED_METHODS] == found[short], body


def _zero_shot_rows():
    common = dict(
        family="walker",
        seed=0,
        train_steps=300000,
        train_minutes=12.5,
        episodes=10,
        fell=10,
        time_limit=0,
        unstable=0,
        error="",
        length_mean=80.0,
    )
    return [
        dict(common, split="zero-shot", body="walker_6_right_foot", return_mean=123.45, return_std=6.78),
        dict(
            common,
            split="zero-shot",
            body="walker_3_left_knee_right_knee",
            return_mean=float("nan"),
            return_std=float("nan"),
            error="cannot be controlled: too many limbs",
        ),
        dict(common, split="train (last 10%)", body="walker_7_full", return_mean=222.2, return_std=3.3),
    ]


def test_report_puts_measured_rows_beside_published_ones(tmp_path):
    report = _report_module()
    (tmp_path / "learning").mkdir()
    (tmp_path / "learning" / "table.md").write_text("| hopper | set | 284 ± 18 |\n")
    (tmp_path / "learning" / "hopper.png").write_bytes(b"\x89PNG")
    (tmp_path / "zero_shot").mkdir()
    meta = dict(
        date="2026-12-01",
        machine="test machine",
        task="v1",
        steps=300000,
        episodes=10,
        generated_by="benchmarks/zero_shot.py",
    )
    (tmp_path / "zero_shot" / "zero_shot.json").write_text(json.dumps({"meta": meta, "rows": _zero_shot_rows()}))

    assert report.main(["--results", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text()
    assert "| hopper | set | 284 ± 18 |" in text
    assert "![hopper](learning/hopper.png)" in text
    walker_6 = next(line for line in text.splitlines() if "walker_6_right_foot" in line)
    assert "123.5 ± 6.8" in walker_6 and "431.3 ± 146.2" in walker_6 and "300,000" in walker_6
    walker_3 = next(line for line in text.splitlines() if "walker_3_left_knee_right_knee" in line)
    assert "too many limbs" in walker_3 and "276.2 ± 17.4" in walker_3
    assert "| walker | walker_7_full (seed 0) | 222.2 ± 3.3 |" in text
    assert "## World models" not in text  # no files, no section


def test_report_includes_crosscheck_and_every_world_model_folder(tmp_path):
    report = _report_module()
    (tmp_path / "ppo_crosscheck").mkdir()
    (tmp_path / "ppo_crosscheck" / "table.md").write_text("| brax | 512 | 230 | 15.0 min | 2,200 |\n")
    for name, line in (("world_models", "| gru | 0.62 |"), ("world_models_10k", "| gru | 0.46 |")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "table.md").write_text(f"# World models: {name}\n\n{line}\n")
        (tmp_path / name / "yaw_sweep.png").write_bytes(b"\x89PNG")

    assert report.main(["--results", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text()
    assert "## PPO cross-check against Brax" in text and "| brax | 512 | 230 |" in text
    # both world-model reports, headings nested one level down, each with its own plot
    assert text.index("## World models: world_models\n") < text.index("## World models: world_models_10k")
    assert "| gru | 0.62 |" in text and "| gru | 0.46 |" in text
    assert "![yaw_sweep](world_models_10k/yaw_sweep.png)" in text


def test_report_without_results_folder_fails_clearly(tmp_path, capsys):
    assert _report_module().main(["--results", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
