import json

import numpy as np

from backend.evaluation.evaluate import evaluate
from backend.evaluation.metrics import confusion_matrix, summarize_confusion
from tests.backend.conftest import write_raster


def test_metrics_from_a_known_confusion_matrix():
    ref = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    pred = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 0])
    cm = confusion_matrix(ref, pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 4]]
    s = summarize_confusion(cm, ["a", "b", "c"])
    assert s["oa"] == 0.8 and s["n_pixels"] == 10 and s["aa"] == round((2 / 3 + 1 + 0.8) / 3, 4)
    # kappa: po = 0.8, pe = (3*3 + 2*3 + 5*4) / 100 = 0.35
    assert abs(s["kappa"] - (0.8 - 0.35) / 0.65) < 1e-4
    assert s["per_class"]["c"]["recall"] == 0.8 and s["per_class"]["b"]["precision"] == 0.6667


def test_evaluate_counts_each_reference_pixel_once_and_reports_nodata(tmp_path):
    ref = np.zeros((10, 10), np.uint8)
    ref[:5] = 1
    ref[5:] = 2
    pred = ref.copy()
    pred[0, :4] = 2      # 4 errors
    pred[9, :2] = 0      # 2 reference pixels left unclassified
    r = write_raster(tmp_path / "r.tif", ref, dtype="uint8", nodata=0)
    p = write_raster(tmp_path / "p.tif", pred, dtype="uint8", nodata=0)
    result = evaluate(p, r, out_json=str(tmp_path / "rep.json"), out_html=str(tmp_path / "rep.html"))
    m = result["metrics"]
    # The 2 reference pixels left as nodata count as wrong: every reference pixel counted once.
    assert m["n_pixels"] == 100 and m["unclassified_reference_pixels"] == 2
    assert m["oa"] == 0.94
    assert m["confusion_matrix"][1][2] == 2 and m["class_names"][2] == "nodata" and "nodata" not in m["per_class"]
    assert json.load(open(tmp_path / "rep.json"))["oa"] == m["oa"]
    page = open(tmp_path / "rep.html").read()
    assert "Confusion matrix" in page and "0.9400" in page


def test_interior_pixels_leave_out_class_boundaries_but_not_unlabelled_neighbours():
    from backend.evaluation.metrics import interior_pixels
    ref = np.array([[1, 1, 1, 0, 2],
                    [1, 1, 1, 0, 2],
                    [1, 1, 3, 2, 2],
                    [0, 0, 0, 2, 2]], np.uint8)
    inside = interior_pixels(ref)
    # the 3 (a one-pixel "ramp" between two classes) and every pixel touching another class are out
    assert not inside[2, 2] and not inside[1, 1] and not inside[2, 3] and not inside[3, 3]
    # next to unlabelled pixels or the raster edge a pixel stays inside; unlabelled pixels never are
    assert inside[0, 0] and inside[0, 1] and inside[3, 4] and inside[0, 4] and inside[1, 4]
    assert not inside[3, 0] and not inside[0, 3]


def test_evaluate_reports_the_interior_figure_beside_the_full_one(tmp_path):
    ref = np.zeros((12, 12), np.uint8)
    ref[:6] = 1
    ref[6:] = 2
    pred = ref.copy()
    pred[5:7] = 0 + np.where(ref[5:7] == 1, 2, 1)   # the two boundary rows are swapped: all wrong
    r = write_raster(tmp_path / "r.tif", ref, dtype="uint8", nodata=0)
    p = write_raster(tmp_path / "p.tif", pred, dtype="uint8", nodata=0)
    m = evaluate(p, r)["metrics"]
    assert m["n_pixels"] == 144 and abs(m["oa"] - 120 / 144) < 1e-4
    assert m["interior"]["n_pixels"] == 120 and m["interior"]["oa"] == 1.0 and m["interior"]["aa"] == 1.0
    evaluate(p, r, out_html=str(tmp_path / "rep.html"))
    assert "Away from class boundaries (120 reference pixels" in open(tmp_path / "rep.html").read()
