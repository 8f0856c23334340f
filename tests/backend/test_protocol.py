import io
import json

from backend.protocol import PROTOCOL_VERSION, ErrorCode, EventWriter, make_event, parse_event


def test_every_event_is_one_json_line_with_version_and_type():
    stream = io.StringIO()
    events = EventWriter(stream)
    events.progress("classify", 1, 4)
    events.log("hello", "warning")
    events.error(ErrorCode.BAND_MISMATCH, "bad", "hint")
    events.result("classify", outputs={"classes": "x.tif"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    parsed = [json.loads(line) for line in lines]
    assert [p["type"] for p in parsed] == ["progress", "log", "error", "result"]
    assert all(p["v"] == PROTOCOL_VERSION for p in parsed)
    assert parsed[0] == {"v": PROTOCOL_VERSION, "type": "progress", "stage": "classify", "done": 1, "total": 4}
    assert parsed[2]["code"] == "band_mismatch" and parsed[2]["hint"] == "hint"


def test_parse_event_ignores_noise_and_other_versions():
    assert parse_event("plain text") is None
    assert parse_event('{"v": 1, "type": "nonsense"}') is None
    assert parse_event('{"v": 99, "type": "log", "level": "info", "message": "x"}') is None
    assert parse_event(json.dumps(make_event("log", level="info", message="x")))["message"] == "x"


def test_error_codes_are_distinct():
    codes = ErrorCode.all()
    assert len(codes) == len(set(codes))
    assert {"input_not_found", "crs_no_overlap", "band_mismatch", "bad_model", "out_of_memory",
            "cuda_unavailable", "cancelled", "internal", "no_crs", "output_not_writable",
            "model_hash_mismatch", "unsafe_weights", "input_unreadable"} <= set(codes)
