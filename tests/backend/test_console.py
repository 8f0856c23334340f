"""`python -m backend --human`: the text a person sees, while the JSON lines stay the protocol."""

import io
import json
import subprocess
import sys
from pathlib import Path

from backend.console import HumanConsole
from backend.protocol import EventWriter

ROOT = Path(__file__).resolve().parents[2]


def test_console_prints_a_summary_and_keeps_every_event(tmp_path):
    out = io.StringIO()
    events_file = tmp_path / "events.jsonl"
    console = HumanConsole(out, str(events_file))
    writer = EventWriter(console)
    writer.log("detail only for --verbose")
    writer.log("scale looks odd", "warning")
    writer.progress("classify", 0, 2)
    writer.progress("classify", 2, 2)
    writer.result("demo", outputs={"classes": str(tmp_path / "landcover.tif"), "preview": str(tmp_path / "preview.png")},
                  metrics={"oa": 0.8232, "aa": 0.8871, "kappa": 0.7781, "n_pixels": 64384}, timings={"total_s": 4.0})
    console.close()
    text = out.getvalue()
    assert "{" not in text and "\\n" not in text and "\\u" not in text   # no raw JSON reaches the terminal
    assert "detail only" not in text and "warning: scale looks odd" in text
    assert "landcover.tif" in text and "land-cover map" in text and "preview.png" in text
    assert "overall accuracy 82.3 %" in text and "64,384 reference pixels" in text
    assert "classify 4.0 s" in text
    lines = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [e["type"] for e in lines] == ["log", "log", "progress", "progress", "result"]


def test_console_error_says_what_to_do():
    out = io.StringIO()
    console = HumanConsole(out)
    EventWriter(console).error("model_not_found", "The demo model is missing: x", "Restore models/.")
    console.close()
    assert out.getvalue().splitlines() == ["Error (model_not_found): The demo model is missing: x",
                                           "What to do: Restore models/."]


def test_human_flag_leaves_the_protocol_alone(tmp_path):
    """Without --human the command still speaks JSON lines (the plugin's protocol)."""
    run = [sys.executable, "-m", "backend"]
    plain = subprocess.run(run + ["info", "--model", str(ROOT / "models" / "demo-tiny")], cwd=ROOT,
                           capture_output=True, text=True, check=True)
    assert json.loads(plain.stdout.splitlines()[-1])["type"] == "result"
    explicit = subprocess.run(run + ["--json", "info", "--model", str(ROOT / "models" / "demo-tiny")], cwd=ROOT,
                              capture_output=True, text=True, check=True)
    assert explicit.stdout == plain.stdout
    human = subprocess.run(run + ["--human", "--events", str(tmp_path / "e.jsonl"), "info", "--model",
                                  str(ROOT / "models" / "demo-tiny")], cwd=ROOT, capture_output=True, text=True)
    assert human.returncode == 0 and "LandFuse info: done" in human.stdout and "{" not in human.stdout
    assert json.loads((tmp_path / "e.jsonl").read_text().splitlines()[-1])["type"] == "result"
