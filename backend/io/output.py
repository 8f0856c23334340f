"""Writing results: the class GeoTIFF (colour table, category names, QGIS .qml legend) and the
confidence raster, each to a temporary file renamed into place only when complete (the `.part-PID`
temporaries of backend.io.atomic; `part_path`, `PART_MARK` and `remove_stale_parts` are re-exported
here for the callers that know them from this module)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import rasterio

from backend.io.atomic import PART_MARK, discard_part, part_path, remove_stale_parts
from backend.protocol import UNCLASSIFIED as PROTOCOL_UNCLASSIFIED
from backend.protocol import ErrorCode, LandFuseError

if TYPE_CHECKING:
    from rasterio.io import DatasetWriter
    from rasterio.windows import Window

__all__ = ["PART_MARK", "UNCLASSIFIED", "ClassificationWriter", "check_writable", "class_profile", "hex_to_rgb",
           "pam_xml", "part_path", "qml_paletted", "reference_profile", "remove_stale_parts", "sidecar",
           "with_unclassified", "write_class_metadata"]

# The class map's values (0 no data, 1…254 classes, 255 unclassified): protocol.UNCLASSIFIED says why,
# there so that the plugin, which cannot import this module, knows the value too.
UNCLASSIFIED = PROTOCOL_UNCLASSIFIED


def with_unclassified(classes: List[dict]) -> List[dict]:
    """The class table of a map written with a confidence threshold: the model's classes plus the
    "unclassified" entry; refused when the model itself uses its value or name."""
    if any(c["value"] == UNCLASSIFIED["value"] or c["name"] == UNCLASSIFIED["name"] for c in classes):
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS,
                            f"The model has a class {UNCLASSIFIED['value']} or named '{UNCLASSIFIED['name']}', "
                            "which --min-confidence reserves for the pixels it leaves unclassified.",
                            "Classify without --min-confidence, or renumber that class in model.json.")
    return list(classes) + [dict(UNCLASSIFIED)]


def hex_to_rgb(color: str) -> tuple:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


def check_writable(path: Optional[str], what: str = "output") -> None:
    """Refuse before any work when the output cannot be written."""
    if not path:
        raise LandFuseError(ErrorCode.OUTPUT_NOT_WRITABLE, f"No {what} path given.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise LandFuseError(ErrorCode.OUTPUT_NOT_WRITABLE, f"The {what} folder does not exist: {folder}",
                            "Create the folder or choose another output path.")
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise LandFuseError(ErrorCode.OUTPUT_NOT_WRITABLE, f"The {what} cannot be written here: {path}",
                            "Choose a folder you can write to.")
    if os.path.isdir(path):
        raise LandFuseError(ErrorCode.OUTPUT_NOT_WRITABLE, f"The {what} path is a folder: {path}")


def reference_profile(ds: Any) -> dict:
    """The reference raster's profile, plus its ground control points when it is georeferenced by GCPs
    only (no geotransform): the outputs carry them too instead of losing the georeference."""
    profile = dict(ds.profile)
    try:
        gcps, gcp_crs = ds.gcps
    except Exception:  # some drivers raise instead of returning no GCPs
        gcps, gcp_crs = [], None
    if gcps:
        profile["gcps"] = (list(gcps), gcp_crs)
    return profile


def _write_gcps(dst: Any, ref_profile: Mapping[str, Any]) -> None:
    if ref_profile.get("gcps"):
        gcps, gcp_crs = ref_profile["gcps"]
        dst.gcps = (gcps, gcp_crs)


def class_profile(ref_profile: Mapping[str, Any], dtype: str = "uint8", nodata: float = 0) -> dict:
    profile = {
        "driver": "GTiff", "dtype": dtype, "count": 1, "nodata": nodata,
        "width": ref_profile["width"], "height": ref_profile["height"],
        "crs": ref_profile.get("crs"), "transform": ref_profile["transform"],
        "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
    }
    if profile["width"] < 256 or profile["height"] < 256:
        # GDAL requires tile sizes that are multiples of 16; small rasters are written striped.
        profile.update(tiled=False)
        profile.pop("blockxsize")
        profile.pop("blockysize")
    if profile["crs"] is None:
        profile.pop("crs")
    return profile


def write_class_metadata(dst: DatasetWriter, classes: List[dict]) -> None:
    dst.write_colormap(1, {0: (0, 0, 0, 0), **{c["value"]: hex_to_rgb(c["color"]) + (255,) for c in classes}})
    dst.update_tags(LANDFUSE_CLASSES=json.dumps(classes))
    dst.set_band_description(1, "land cover class")


def pam_xml(classes: List[dict]) -> str:
    """GDAL's PAM sidecar (.aux.xml) holding the category names (GeoTIFF has no tag for them)."""
    names = {c["value"]: c["name"] for c in classes}
    top = max(names)
    rows = "".join(f"      <Category>{escape(names.get(v, ''))}</Category>\n" for v in range(top + 1))
    return ("<PAMDataset>\n  <PAMRasterBand band=\"1\">\n    <CategoryNames>\n" + rows
            + "    </CategoryNames>\n  </PAMRasterBand>\n</PAMDataset>\n")


# two elements of the style below too long for one source line
_QML_RESAMPLING = ('<resampling enabled="false" zoomedInResamplingMethod="nearestNeighbour" '
                   'zoomedOutResamplingMethod="nearestNeighbour" maxOversampling="2"/>')
_QML_HUE_SATURATION = ('<huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeRed="255" '
                       'colorizeGreen="128" colorizeBlue="128" colorizeStrength="100" invertColors="0"/>')


def qml_paletted(classes: List[dict]) -> str:
    """A QGIS style with a paletted renderer: value, colour and label of each class (by value)."""
    entries = "".join(
        f"        <paletteEntry value=\"{c['value']}\" color=\"{c['color'].lower()}\" alpha=\"255\" "
        f"label={quoteattr(c['name'])}/>\n" for c in sorted(classes, key=lambda c: c["value"]))
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="AllStyleCategories">
  <pipe>
    <provider>
      {_QML_RESAMPLING}
    </provider>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
      <colorPalette>
{entries}      </colorPalette>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    {_QML_HUE_SATURATION}
    <rasterresampler maxOversampling="2"/>
    <resamplingStage>resamplingFilter</resamplingStage>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def sidecar(path: str, suffix: str) -> str:
    return os.path.splitext(path)[0] + suffix


class ClassificationWriter:
    """Opens the temporary class (and confidence) rasters; `commit` renames everything into place,
    `abort` removes every temporary. Nothing ever appears at the final paths before `commit`."""

    def __init__(self, out_path: str, ref_profile: Mapping[str, Any], classes: List[dict],
                 confidence_path: Optional[str] = None) -> None:
        self.out_path = os.path.abspath(out_path)
        self.confidence_path = os.path.abspath(confidence_path) if confidence_path else None
        self.classes = classes
        self.parts = {}
        for path in filter(None, (self.out_path, self.confidence_path)):
            remove_stale_parts(path)
        self.parts[self.out_path] = part_path(self.out_path)
        self.dst = rasterio.open(self.parts[self.out_path], "w", **class_profile(ref_profile))
        _write_gcps(self.dst, ref_profile)
        self.conf = None
        if self.confidence_path:
            self.parts[self.confidence_path] = part_path(self.confidence_path)
            self.conf = rasterio.open(self.parts[self.confidence_path], "w",
                                      **class_profile(ref_profile, dtype="float32", nodata=-1.0))
            _write_gcps(self.conf, ref_profile)

    def write(self, window: Window, classes_block: np.ndarray, confidence_block: Optional[np.ndarray] = None) -> None:
        self.dst.write(classes_block.astype(np.uint8)[None], window=window)
        if self.conf is not None:
            self.conf.write(confidence_block.astype(np.float32)[None], window=window)

    def commit(self) -> Dict[str, str]:
        write_class_metadata(self.dst, self.classes)
        self.dst.close()
        if self.conf is not None:
            self.conf.set_band_description(1, "confidence (max class probability)")
            self.conf.close()
        extra = {sidecar(self.out_path, ".qml"): qml_paletted(self.classes),
                 self.out_path + ".aux.xml": pam_xml(self.classes)}
        for final, text in extra.items():
            self.parts[final] = part_path(final)
            with open(self.parts[final], "w", encoding="utf-8") as f:
                f.write(text)
        # The class raster is renamed last: once it exists, its sidecars already do.
        for final in sorted(self.parts, key=lambda p: p == self.out_path):
            os.replace(self.parts[final], final)
        self.parts = {}
        outputs = {"classes": self.out_path, "qml": sidecar(self.out_path, ".qml")}
        if self.confidence_path:
            outputs["confidence"] = self.confidence_path
        return outputs

    def abort(self) -> None:
        for handle in (self.dst, self.conf):
            if handle is not None and not handle.closed:
                try:
                    handle.close()
                except Exception:
                    pass
        for part in self.parts.values():
            discard_part(part)
        self.parts = {}
