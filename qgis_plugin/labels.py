"""Training labels drawn in QGIS.

- `create_labelling_layer`: a GeoPackage polygon layer with an integer `class` field, a categorized
  style with the classes' names and colours, and a drop-down (value map) editor so a person draws
  areas and picks a class by name.
- `export_labels`: any point/polygon layer + class field (or its categorized style), reprojected
  to the HSI CRS, written to a GeoPackage whose integer `class` field the backend rasterises onto
  the HSI grid. Text classes get values 1..N (order of the style's categories, else sorted) and
  their names travel in `class_name` / `color` fields.
"""

import os

from qgis.core import (
    NULL,
    QgsCategorizedSymbolRenderer,
    QgsCoordinateTransform,
    QgsCsException,
    QgsEditorWidgetSetup,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsFillSymbol,
    QgsMarkerSymbol,
    QgsProject,
    QgsRendererCategory,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant
from qgis.PyQt.QtGui import QColor

CLASS_FIELD = "class"
NAME_FIELD = "class_name"
COLOR_FIELD = "color"
DEFAULT_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                  "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]


def new_class_table(names):
    """Class table for names typed by the user: values 1..N, distinct colours."""
    return [{"value": i, "name": n, "color": DEFAULT_COLORS[(i - 1) % len(DEFAULT_COLORS)]}
            for i, n in enumerate(names, start=1)]


def _symbol(geometry_type, color):
    c = QColor(color)
    if geometry_type == QgsWkbTypes.PointGeometry:
        return QgsMarkerSymbol.createSimple({"color": c.name(), "size": "2.5", "outline_color": "#000000"})
    fill = QColor(c)
    fill.setAlpha(110)
    return QgsFillSymbol.createSimple({"color": f"{fill.red()},{fill.green()},{fill.blue()},{fill.alpha()}",
                                       "outline_color": c.name(), "outline_width": "0.6"})


def categorized_renderer(class_table, geometry_type=QgsWkbTypes.PolygonGeometry, field=CLASS_FIELD):
    categories = [QgsRendererCategory(int(row["value"]), _symbol(geometry_type, row["color"]), str(row["name"]))
                  for row in sorted(class_table, key=lambda r: int(r["value"]))]
    return QgsCategorizedSymbolRenderer(field, categories)


def create_labelling_layer(path, crs, class_table, name="LandFuse training labels", project=None,
                           add_to_project=True):
    """Write an empty GeoPackage polygon layer and return it styled (and added to the project)."""
    if os.path.exists(path):
        raise FileExistsError(f"{path} already exists")
    fields = QgsFields()
    fields.append(QgsField(CLASS_FIELD, QVariant.Int))
    fields.append(QgsField("note", QVariant.String))
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "labels"
    project = project or QgsProject.instance()
    writer = QgsVectorFileWriter.create(path, fields, QgsWkbTypes.MultiPolygon, crs,
                                        project.transformContext(), options)
    if writer.hasError() != QgsVectorFileWriter.NoError:
        raise OSError(f"Cannot create {path}: {writer.errorMessage()}")
    del writer
    layer = QgsVectorLayer(f"{path}|layername=labels", name, "ogr")
    if not layer.isValid():
        raise OSError(f"QGIS cannot open the new label layer {path}")
    style_label_layer(layer, class_table)
    if add_to_project:
        project.addMapLayer(layer)
    return layer


def style_label_layer(layer, class_table, field=CLASS_FIELD):
    layer.setRenderer(categorized_renderer(class_table, layer.geometryType(), field))
    index = layer.fields().indexOf(field)
    if index >= 0:
        value_map = [{str(row["name"]): int(row["value"])} for row in sorted(class_table, key=lambda r: int(r["value"]))]
        layer.setEditorWidgetSetup(index, QgsEditorWidgetSetup("ValueMap", {"map": value_map}))
    # Saved as the GeoPackage's default style so the file opens styled anywhere.
    try:
        layer.saveStyleToDatabase("landfuse", "LandFuse classes", True, "")
    except Exception:  # noqa: BLE001 - read-only files etc.: the project keeps the style anyway
        pass
    layer.triggerRepaint()


def class_field_of(layer):
    """The field a categorized style classifies on, or None."""
    renderer = layer.renderer() if layer is not None else None
    if isinstance(renderer, QgsCategorizedSymbolRenderer):
        field = renderer.classAttribute()
        if layer.fields().indexOf(field) >= 0:
            return field
    return None


def class_table_from_style(layer):
    """[{value, name, color}] from a categorized style on an integer field, else []."""
    renderer = layer.renderer()
    if not isinstance(renderer, QgsCategorizedSymbolRenderer):
        return []
    rows = []
    for cat in renderer.categories():
        try:
            value = int(cat.value())
        except (TypeError, ValueError):
            return []
        if value > 0:
            rows.append({"value": value, "name": cat.label() or f"class {value}", "color": cat.symbol().color().name()})
    return rows


def _value_mapping(layer, field):
    """{field value → (int class value, name, colour)} for every distinct non-null value."""
    index = layer.fields().indexOf(field)
    distinct = [v for v in layer.uniqueValues(index) if v is not None and v != NULL and str(v) != ""]
    numeric = layer.fields().at(index).isNumeric()
    styled = {}
    renderer = layer.renderer()
    order = []
    if isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == field:
        for cat in renderer.categories():
            if cat.value() is None or cat.value() == "":
                continue
            styled[str(cat.value())] = (cat.label(), cat.symbol().color().name())
            order.append(str(cat.value()))
    mapping = {}
    if numeric:
        for v in distinct:
            value = int(v)
            name, color = styled.get(str(v), styled.get(str(value), (f"class {value}", None)))
            mapping[v] = (value, name, color or DEFAULT_COLORS[(value - 1) % len(DEFAULT_COLORS)])
        return mapping
    texts = [str(v) for v in distinct]
    ordered = [t for t in order if t in texts] + sorted(t for t in texts if t not in order)
    for i, text in enumerate(ordered, start=1):
        name, color = styled.get(text, (text, None))
        mapping[text] = (i, name or text, color or DEFAULT_COLORS[(i - 1) % len(DEFAULT_COLORS)])
    return {v: mapping[str(v)] for v in distinct}


def export_labels(layer, field, dest_crs, out_path, project=None):
    """Write `layer` reprojected to `dest_crs` as a GeoPackage with integer `class`, `class_name`
    and `color` fields. Returns (path, class table, number of features written)."""
    project = project or QgsProject.instance()
    mapping = _value_mapping(layer, field)
    if not mapping:
        raise ValueError(f"The label layer '{layer.name()}' has no values in field '{field}'.")
    fields = QgsFields()
    fields.append(QgsField(CLASS_FIELD, QVariant.Int))
    fields.append(QgsField(NAME_FIELD, QVariant.String))
    fields.append(QgsField(COLOR_FIELD, QVariant.String))
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "labels"
    writer = QgsVectorFileWriter.create(out_path, fields, layer.wkbType(), dest_crs, project.transformContext(), options)
    if writer.hasError() != QgsVectorFileWriter.NoError:
        raise OSError(f"Cannot write {out_path}: {writer.errorMessage()}")
    transform = QgsCoordinateTransform(layer.crs(), dest_crs, project.transformContext())
    index = layer.fields().indexOf(field)
    written = 0
    for feature in layer.getFeatures():
        raw = feature.attributes()[index]
        if raw is None or raw == NULL or raw not in mapping:
            continue
        value, name, color = mapping[raw]
        if value <= 0 or not feature.hasGeometry():
            continue
        geometry = feature.geometry()
        try:
            geometry.transform(transform)
        except QgsCsException:
            continue
        out = QgsFeature(fields)
        out.setGeometry(geometry)
        out.setAttributes([value, name, color])
        writer.addFeature(out)
        written += 1
    del writer
    table = sorted({m[0]: {"value": m[0], "name": m[1], "color": m[2]} for m in mapping.values() if m[0] > 0}.values(),
                   key=lambda r: r["value"])
    return out_path, table, written
