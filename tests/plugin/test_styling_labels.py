"""Result styling by class value, confidence greyscale, the labelling layer and label export."""

import os
import random

import pytest
from landfuse.qgis_plugin.labels import (
    class_field_of,
    class_table_from_style,
    create_labelling_layer,
    export_labels,
    new_class_table,
)
from landfuse.qgis_plugin.labels_dialog import class_table_for
from landfuse.qgis_plugin.styling import add_result_layers, apply_class_style, renderer_classes
from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsGeometry,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandGrayRenderer,
    QgsVectorLayer,
)
from scenes import label_polygons_wkt, make_scene

TABLE = [{"value": 1, "name": "water", "color": "#1f78b4"}, {"value": 2, "name": "trees", "color": "#33a02c"},
         {"value": 3, "name": "buildings", "color": "#e31a1c"}, {"value": 7, "name": "roads", "color": "#6a6a6a"}]


@pytest.fixture
def scene(tmp_path):
    return make_scene(tmp_path)


def test_paletted_renderer_matches_by_value_not_order(scene):
    layer = QgsRasterLayer(scene["truth"], "classes", "gdal")
    shuffled = list(TABLE)
    random.Random(3).shuffle(shuffled)
    assert shuffled != TABLE
    apply_class_style(layer, shuffled)
    assert isinstance(layer.renderer(), QgsPalettedRasterRenderer)
    assert renderer_classes(layer) == {r["value"]: (r["name"], r["color"]) for r in TABLE}
    assert [c.value for c in layer.renderer().classes()] == [1, 2, 3, 7]
    legend = [label for label, _ in layer.renderer().legendSymbologyItems()]
    assert legend == ["water", "trees", "buildings", "roads"]


def test_unclassified_pixels_have_their_own_legend_entry(scene):
    """`classify --min-confidence` adds value 255 "unclassified" to the class table it returns."""
    layer = QgsRasterLayer(scene["truth"], "classes", "gdal")
    apply_class_style(layer, TABLE + [{"value": 255, "name": "unclassified", "color": "#000000"}])
    assert renderer_classes(layer)[255] == ("unclassified", "#000000")
    legend = [label for label, _ in layer.renderer().legendSymbologyItems()]
    assert legend == ["water", "trees", "buildings", "roads", "unclassified"]


def test_duplicate_values_refused(scene):
    layer = QgsRasterLayer(scene["truth"], "classes", "gdal")
    with pytest.raises(ValueError):
        apply_class_style(layer, TABLE + [{"value": 1, "name": "lake", "color": "#000000"}])


def test_add_result_layers_order_and_styles(scene, qgis_new_project):
    classes, conf = add_result_layers(scene["truth"], TABLE, scene["dsm"], name="map")
    root = QgsProject.instance().layerTreeRoot()
    order = [node.layer() for node in root.findLayers()]
    assert order[:2] == [classes, conf]
    assert isinstance(conf.renderer(), QgsSingleBandGrayRenderer)
    assert conf.name() == "map confidence"


def test_create_labelling_layer(tmp_path, qgis_new_project):
    path = str(tmp_path / "labels.gpkg")
    layer = create_labelling_layer(path, QgsCoordinateReferenceSystem("EPSG:32633"), TABLE)
    assert os.path.isfile(path) and layer.isValid()
    assert layer.geometryType() == 2  # polygons
    assert layer.fields().indexOf("class") >= 0
    assert layer.crs().authid() == "EPSG:32633"
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "class"
    cats = {int(c.value()): (c.label(), c.symbol().color().name()) for c in renderer.categories()}
    assert cats == {r["value"]: (r["name"], r["color"]) for r in TABLE}
    assert class_field_of(layer) == "class"
    assert class_table_from_style(layer) == TABLE
    setup = layer.editorWidgetSetup(layer.fields().indexOf("class"))
    assert setup.type() == "ValueMap"
    assert QgsProject.instance().mapLayer(layer.id()) is not None
    # the GeoPackage opens styled elsewhere too (default style stored in the file)
    again = QgsVectorLayer(f"{path}|layername=labels", "again", "ogr")
    assert isinstance(again.renderer(), QgsCategorizedSymbolRenderer)
    with pytest.raises(FileExistsError):
        create_labelling_layer(path, QgsCoordinateReferenceSystem("EPSG:32633"), TABLE)


def test_class_table_for_names_and_model():
    table = class_table_for(None, "water, trees; grass")
    assert [r["name"] for r in table] == ["water", "trees", "grass"] and [r["value"] for r in table] == [1, 2, 3]
    assert len({r["color"] for r in table}) == 3
    with pytest.raises(ValueError):
        class_table_for(None, "a, a")
    assert new_class_table(["x"])[0]["value"] == 1


def test_export_labels_reprojects_and_maps_text_classes(tmp_path, qgis_new_project):
    # polygons drawn in WGS 84 with a text class field and no style
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326&field=kind:string", "drawn", "memory")
    from qgis.core import QgsCoordinateTransform
    to_wgs = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:32633"),
                                    QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    names = {1: "trees", 2: "water", 3: "bare"}
    feats = []
    for value, wkt in label_polygons_wkt():
        geom = QgsGeometry.fromWkt(wkt)
        geom.transform(to_wgs)
        f = QgsFeature(layer.fields())
        f.setGeometry(geom)
        f.setAttributes([names[value]])
        feats.append(f)
    layer.dataProvider().addFeatures(feats)
    out, table, count = export_labels(layer, "kind", QgsCoordinateReferenceSystem("EPSG:32633"), str(tmp_path / "l.gpkg"))
    assert count == 3
    assert [r["name"] for r in table] == ["bare", "trees", "water"]  # sorted text → 1..N
    written = QgsVectorLayer(out, "w", "ogr")
    assert written.crs().authid() == "EPSG:32633"
    rows = {f["class_name"]: (f["class"], f.geometry().boundingBox()) for f in written.getFeatures()}
    assert rows["trees"][0] == 2
    box = rows["trees"][1]  # back in UTM, around the first third of the scene
    assert abs(box.xMinimum() - 500003) < 0.5 and abs(box.xMaximum() - 500013) < 0.5
