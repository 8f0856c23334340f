"""PNG preview for reports: the image (true-colour composite) beside the class map, with a legend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from backend.io.output import hex_to_rgb

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

RGB_NM = (640.0, 550.0, 470.0)


def _rgb_bands(ds):
    """Band numbers closest to red/green/blue from the wavelength metadata, else three spread bands."""
    wavelengths = []
    for b in range(1, ds.count + 1):
        try:
            wavelengths.append(float(ds.tags(b).get("wavelength")))
        except (TypeError, ValueError):
            wavelengths = []
            break
    if len(wavelengths) == ds.count and ds.count >= 3:
        return [int(np.argmin(np.abs(np.asarray(wavelengths) - nm))) + 1 for nm in RGB_NM]
    if ds.count >= 3:
        return [ds.count * 3 // 4 or 1, ds.count // 2 or 1, max(1, ds.count // 4)]
    return [1, 1, 1]


def _stretch(band, valid):
    values = band[valid]
    if values.size == 0:
        return np.zeros(band.shape, np.uint8)
    lo, hi = np.percentile(values, (2, 98))
    out = np.clip((band - lo) / max(hi - lo, 1e-12), 0, 1)
    return (np.where(valid, out, 0) * 255).astype(np.uint8)


def render_preview(hsi_ds: DatasetReader, class_ds: DatasetReader, classes: Sequence[Mapping[str, Any]], out_path: str,
                   max_side: int = 512) -> str:
    """Write `out_path` (PNG) and return it."""
    scale = max(hsi_ds.width, hsi_ds.height) / max_side
    shape = (max(1, int(hsi_ds.height / max(scale, 1))), max(1, int(hsi_ds.width / max(scale, 1))))
    bands = _rgb_bands(hsi_ds)
    data = hsi_ds.read(bands, out_shape=(3,) + shape).astype(np.float32)
    valid = np.isfinite(data).all(0)
    if hsi_ds.nodata is not None:
        valid &= (data != hsi_ds.nodata).all(0)
    rgb = np.dstack([_stretch(b, valid) for b in data])
    labels = class_ds.read(1, out_shape=shape)
    palette = np.zeros((256, 3), np.uint8)
    for c in classes:
        palette[c["value"]] = hex_to_rgb(c["color"])
    cmap = palette[labels]
    h, w = shape
    legend_w = 170
    canvas = Image.new("RGB", (2 * w + 30 + legend_w, max(h, 24 * len(classes) + 40) + 30), "white")
    canvas.paste(Image.fromarray(rgb), (10, 25))
    canvas.paste(Image.fromarray(cmap), (w + 20, 25))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((10, 6), "image (true colour)", fill="black", font=font)
    draw.text((w + 20, 6), "land cover", fill="black", font=font)
    x0 = 2 * w + 30
    for i, c in enumerate(sorted(classes, key=lambda c: c["value"])):
        y = 25 + 24 * i
        draw.rectangle([x0, y, x0 + 18, y + 16], fill=hex_to_rgb(c["color"]), outline="black")
        draw.text((x0 + 26, y + 2), f"{c['value']} {c['name']}", fill="black", font=font)
    y = 25 + 24 * len(classes)
    draw.rectangle([x0, y, x0 + 18, y + 16], fill="black", outline="black")
    draw.text((x0 + 26, y + 2), "0 nodata", fill="black", font=font)
    from backend.io.atomic import atomic_path
    with atomic_path(out_path) as part:
        canvas.save(part, "PNG")
    return out_path


def preview_files(hsi_path: str, classes_path: str, out_path: str) -> str:
    """`preview` command: the class table comes from the map's LANDFUSE_CLASSES tag (classify writes it)."""
    import json

    from backend.io import rasters
    from backend.io.paths import check_outputs
    from backend.protocol import ErrorCode, LandFuseError
    check_outputs([hsi_path, classes_path], {"preview PNG": out_path})
    with rasters.open_raster(hsi_path, "hyperspectral") as hsi, rasters.open_raster(classes_path, "class") as classes:
        try:
            table = json.loads(classes.tags().get("LANDFUSE_CLASSES", ""))
        except ValueError:
            raise LandFuseError(ErrorCode.INPUT_UNREADABLE,
                                f"{classes_path} carries no LandFuse class table (LANDFUSE_CLASSES tag).",
                                "Pass a map written by `classify`.") from None
        return render_preview(hsi, classes, table, out_path)
