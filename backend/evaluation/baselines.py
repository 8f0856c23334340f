"""The random forest every accuracy figure stands beside: one recipe, one tree count, everywhere.

scikit-learn's RandomForestClassifier with 300 trees on all cores is what users get free in EnMAP-Box
and the Orfeo ToolBox; beating it on the same split is the bar our networks must clear.
"""

from __future__ import annotations

from backend.protocol import ErrorCode, LandFuseError

RF_TREES = 300


def random_forest(seed: int, balanced: bool = False):
    """An unfitted forest. `balanced` weights classes inversely to their frequency: for training sets
    (library spectra) whose class sizes say nothing about the scene's."""
    try:
        from sklearn.ensemble import RandomForestClassifier
    except ImportError as exc:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, "The random_forest baseline needs scikit-learn, which is not installed.",
                            "Install it into the backend environment (.venv/bin/pip install scikit-learn) "
                            "or leave random_forest out of --arch.") from exc
    return RandomForestClassifier(n_estimators=RF_TREES, n_jobs=-1, random_state=seed,
                                  class_weight="balanced" if balanced else None)
