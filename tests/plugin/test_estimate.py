"""The sentence a trained model's accuracy becomes in the Processing log, the dock and the model list."""

from qgis_plugin.estimate import describe_estimate


def test_cross_validated_estimate_names_the_forest_and_which_is_better():
    cv = {"folds": 3, "block": 16, "pixels": 120, "steps_per_fold": 80,
          "recipe": {"oa": 0.912, "aa": 0.9}, "random_forest": {"oa": 0.75, "aa": 0.7}}
    text = describe_estimate({"oa": 0.912, "aa": 0.9, "cross_validation": cv})
    assert "3 spatially blocked folds, 120 labelled pixels" in text
    assert "overall accuracy 91.2 %" in text and "random forest on the same folds: 75.0 % / 70.0 %" in text
    assert "network is the better choice" in text
    worse = dict(cv, random_forest={"oa": 0.95, "aa": 0.94})
    assert "forest scores as well or better" in describe_estimate({"cross_validation": worse})


def test_legacy_validation_and_no_figure():
    assert describe_estimate({"oa": 0.5, "val_pixels": 40}) == \
        "Validation overall accuracy 50.0 % on 40 held-out labelled pixels."
    assert describe_estimate({}) is None and describe_estimate(None) is None
