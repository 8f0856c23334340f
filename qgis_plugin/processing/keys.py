"""The Processing parameter and output names of the LandFuse algorithms, in one place.

They are public: users' batch files, graphical models and `qgis_process` command lines name them,
so a value here never changes. Within the plugin, always the constant: a typo then fails at once
instead of reading a parameter that is never there.
"""

# inputs (classify_raster, train_model, finetune_model)
INPUT_HSI = "INPUT_HSI"
AUX_LAYERS = "AUX_LAYERS"
MODEL_FOLDER = "MODEL_FOLDER"
DEVICE = "DEVICE"
TILE_SIZE = "TILE_SIZE"

# classify_raster
WAVELENGTHS = "WAVELENGTHS"
OUTPUT_CLASSES = "OUTPUT_CLASSES"
OUTPUT_CONFIDENCE = "OUTPUT_CONFIDENCE"
CLASS_COUNT = "CLASS_COUNT"

# train_model, finetune_model
LABELS_VECTOR = "LABELS_VECTOR"
CLASS_FIELD = "CLASS_FIELD"
LABELS_RASTER = "LABELS_RASTER"
ARCHITECTURE = "ARCHITECTURE"
EPOCHS = "EPOCHS"
SEED = "SEED"
MODEL_NAME = "MODEL_NAME"
OUTPUT_MODEL = "OUTPUT_MODEL"
OVERALL_ACCURACY = "OVERALL_ACCURACY"     # also assess_accuracy

# assess_accuracy
INPUT_CLASSES = "INPUT_CLASSES"
REFERENCE_RASTER = "REFERENCE_RASTER"
REFERENCE_VECTOR = "REFERENCE_VECTOR"
REFERENCE_FIELD = "REFERENCE_FIELD"
OPEN_REPORT = "OPEN_REPORT"
OUTPUT_HTML = "OUTPUT_HTML"
OUTPUT_JSON = "OUTPUT_JSON"               # also backend_diagnostics
AVERAGE_ACCURACY = "AVERAGE_ACCURACY"
KAPPA = "KAPPA"

# backend_diagnostics
DIAGNOSTICS = "DIAGNOSTICS"
BACKEND_PYTHON = "BACKEND_PYTHON"
