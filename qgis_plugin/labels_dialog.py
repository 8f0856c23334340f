"""LandFuse ▸ New labelling layer…: a GeoPackage polygon layer styled with a model's classes or
with new class names, for drawing training areas."""

import os

from qgis.core import QgsProject
from qgis.gui import QgsFileWidget, QgsProjectionSelectionWidget
from qgis.PyQt.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLineEdit, QMessageBox, QVBoxLayout

from .labels import create_labelling_layer, new_class_table
from .models import list_models, load_entry


def class_table_for(model_dir=None, names_text=""):
    """A model's class table, or one made from comma/semicolon separated names."""
    if model_dir:
        entry = load_entry(model_dir)
        if not entry.ok:
            raise ValueError(entry.problem)
        return entry.summary["classes"]
    names = [n.strip() for n in names_text.replace(";", ",").split(",") if n.strip()]
    if not names:
        raise ValueError("Give class names (separated by commas) or pick a model.")
    if len(set(names)) != len(names):
        raise ValueError("Class names must be distinct.")
    return new_class_table(names)


class LabelLayerDialog(QDialog):
    def __init__(self, parent=None, crs=None, model_dir=None):
        super().__init__(parent)
        self.setWindowTitle("LandFuse — new labelling layer")
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.path_widget = QgsFileWidget()
        self.path_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.path_widget.setFilter("GeoPackage (*.gpkg)")
        home = QgsProject.instance().homePath() or os.path.expanduser("~")
        self.path_widget.setFilePath(os.path.join(home, "landfuse_labels.gpkg"))
        form.addRow("File", self.path_widget)
        self.crs_widget = QgsProjectionSelectionWidget()
        self.crs_widget.setCrs(crs if crs is not None and crs.isValid() else QgsProject.instance().crs())
        form.addRow("CRS", self.crs_widget)
        self.model_combo = QComboBox()
        self.model_combo.addItem("New classes (type names below)", "")
        for entry in list_models():
            self.model_combo.addItem(f"Classes of {entry.label}", entry.path)
        if model_dir:
            index = self.model_combo.findData(os.path.abspath(model_dir))
            if index >= 0:
                self.model_combo.setCurrentIndex(index)
        form.addRow("Classes", self.model_combo)
        self.names_edit = QLineEdit()
        self.names_edit.setPlaceholderText("e.g. water, trees, grass, buildings, roads")
        form.addRow("New class names", self.names_edit)
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.create)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.layer = None

    def create(self):
        path = self.path_widget.filePath().strip()
        if not path.lower().endswith(".gpkg"):
            path += ".gpkg"
        try:
            table = class_table_for(self.model_combo.currentData(), self.names_edit.text())
            self.layer = create_labelling_layer(path, self.crs_widget.crs(), table)
        except (ValueError, OSError) as exc:
            QMessageBox.warning(self, "LandFuse", str(exc))
            return
        self.accept()
