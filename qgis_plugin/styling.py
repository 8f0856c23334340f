"""Styling the backend's outputs from the model's class table.

The legend is built from the class table the backend returns (value, name, colour), matched by
*value*: the order of the table, or of the colour table embedded in the GeoTIFF, never matters.
"""

import os

from qgis.core import (
    QgsContrastEnhancement,
    QgsLayerTreeLayer,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsSingleBandGrayRenderer,
)
from qgis.PyQt.QtGui import QColor


def normalize_class_table(class_table):
    """[{value, name, color}] → sorted by value, with ints and QColor-parsable colours; duplicates
    of a value are refused (a legend cannot show two names for one value)."""
    rows = {}
    for row in class_table or []:
        value = int(row["value"])
        if value in rows:
            raise ValueError(f"class value {value} appears twice in the class table")
        color = QColor(str(row.get("color", "#808080")))
        if not color.isValid():
            color = QColor("#808080")
        rows[value] = {"value": value, "name": str(row.get("name", f"class {value}")), "color": color.name()}
    return [rows[v] for v in sorted(rows)]


def paletted_renderer(layer, class_table, band=1):
    classes = [QgsPalettedRasterRenderer.Class(row["value"], QColor(row["color"]), row["name"])
               for row in normalize_class_table(class_table)]
    return QgsPalettedRasterRenderer(layer.dataProvider(), band, classes)


def apply_class_style(layer, class_table):
    """Paletted renderer by value; 0 (nodata, no palette entry) is not drawn."""
    renderer = paletted_renderer(layer, class_table)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return renderer


def renderer_classes(layer):
    """{value: (name, '#rrggbb')} of a paletted layer — what the Layers panel shows."""
    renderer = layer.renderer()
    if not isinstance(renderer, QgsPalettedRasterRenderer):
        return {}
    return {int(c.value): (c.label, c.color.name()) for c in renderer.classes()}


def apply_confidence_style(layer, minimum=0.0, maximum=1.0):
    renderer = QgsSingleBandGrayRenderer(layer.dataProvider(), 1)
    enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(1))
    enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum, True)
    enhancement.setMinimumValue(minimum)
    enhancement.setMaximumValue(maximum)
    renderer.setContrastEnhancement(enhancement)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return renderer


def add_result_layers(class_path, class_table, confidence_path=None, name=None, project=None):
    """Add the class raster (paletted) at the top of the layer tree and the confidence raster
    (greyscale) right below it. Call on the main thread. Returns (class layer, confidence layer)."""
    project = project or QgsProject.instance()
    base = name or os.path.splitext(os.path.basename(class_path))[0]
    layer = QgsRasterLayer(class_path, base, "gdal")
    if not layer.isValid():
        raise RuntimeError(f"QGIS cannot open the class raster {class_path}")
    apply_class_style(layer, class_table)
    root = project.layerTreeRoot()
    project.addMapLayer(layer, False)
    root.insertChildNode(0, QgsLayerTreeLayer(layer))
    conf_layer = None
    if confidence_path and os.path.isfile(confidence_path):
        conf_layer = QgsRasterLayer(confidence_path, f"{base} confidence", "gdal")
        if conf_layer.isValid():
            apply_confidence_style(conf_layer)
            project.addMapLayer(conf_layer, False)
            root.insertChildNode(1, QgsLayerTreeLayer(conf_layer))
        else:
            conf_layer = None
    return layer, conf_layer


def has_default_renderer(layer):
    """True while the layer shows as QGIS drew it on loading (grey band 1, or bands 1-2-3 as RGB):
    a renderer the user chose is left alone."""
    renderer = layer.renderer()
    if isinstance(renderer, QgsSingleBandGrayRenderer):
        return renderer.grayBand() == 1
    if isinstance(renderer, QgsMultiBandColorRenderer):
        return (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (1, 2, 3)
    return renderer is None


def apply_spectral_renderer(layer, bands):
    """Show a multi-band layer with the (red, green, blue) band numbers `bands`, each stretched
    from its 2nd to its 98th percentile."""
    red, green, blue = bands
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), int(red), int(green), int(blue)))
    layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum, QgsRasterMinMaxOrigin.CumulativeCut)
    layer.triggerRepaint()
    return layer.renderer()
