"""Standard HSI + LiDAR benchmarks, read from the files their users have, written as plain rasters.

Each loader reads a benchmark's official .mat files (MATLAB v5; v7.3/HDF5 files through h5py when it
is installed), checks every file whose name is a known official one against its SHA-256, and writes
into a work folder:

    hsi.tif            float32 (bands, rows, cols), no CRS (pixel grid only)
    aux_<name>.tif     one raster per auxiliary modality (DSM, LiDAR intensity, SAR), same grid
    train.tif          uint8 training labels (0 = unlabelled), class names in the LANDFUSE_CLASSES tag
    test.tif           uint8 test labels, disjoint from train.tif
    dataset.json       what was read (files, checksums, split) and the class table

so `train` / `classify` / `evaluate` run on them unchanged: CRS-less rasters of identical size are
lined up by array position (rasters.check_overlap's "pixel" mode).

Datasets: trento, houston2013, muufl, augsburg (the four standard HSI+LiDAR/SAR benchmarks), and two
real scenes available to LandFuse's own tests: dfc2018_crop (HSI-PCA5 + DSM, no official split: a
seeded split by whole blocks) and indian_pines_msi (10-band MSI, standard split, no LiDAR; or
indian_pines_msi_blocks: the same labels re-split by seeded blocks). Four more real single-sensor scenes,
each split by seeded blocks: salinas_a (AVIRIS, approximate band centres), indian_pines_crop (AVIRIS, exact
centres and FWHM), dfc2018_houston_crop (CASI at 1 m, majority label per HSI pixel of a 4× finer label
grid) and samson (wavelengths from its ENVI header). Where a scene has band centres, hsi.tif carries them
as per-band `wavelength`/`fwhm` items (what backend.io.spectral reads).
"""

import hashlib
import json
import os
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np

from backend.io.atomic import atomic_path, write_json_atomic
from backend.protocol import ErrorCode, LandFuseError

# SHA-256 of the official files users commonly have (from ../shared/data/README.md), by dataset.
OFFICIAL_SHA256 = {
    "trento": {
        "HSI.mat": "44a84b4fe8bab9b2f5ec11af32602436ccc97653b7ae8c3283334da7d221c053",
        "LiDAR.mat": "d99347532e7b18982c9537fd4de43574dd64f9b35ccab251459e7b483ddd43df",
        "Italy_hsi.mat": "7b965fd405314b5c91451042e547a1923be6f5a38c6da83969032cff79729280",
    },
    "muufl": {
        "HSI.mat": "66132d97e8e090b63ec28a1a7a92c85c18e4226a76ba703eb43b0d44b1ff5938",
        "LiDAR.mat": "6ff05737867f68ba381807564f431eafa8e603434971988767953122103ec09b",
        "muufl_gulfport_campus_1_hsi_220_label.mat":
            "69420a72866dff4a858ae503e6e2981af46f406a4ad8f4dd642efa43feb59edc",
    },
    "houston2013": {
        "HSI.mat": "6a0edba3c224df411623ed5774fc34e91929ab341709859b2f56cc38dbb3c6fd",
        "LiDAR.mat": "7aa956e7c371fd29a495f0cb9bb8f572aaa4065fcfeda2b3e854a5cef74b35ad",
        "CASI.tif": "1440f38594e8e82cc1944c084fc138ef55a70af54122828e999c4fb438574c14",
        "LiDAR.tif": "9f4facce8876ee84642d9cb03536baf0389506de97ddc01b73366fe4521de981",
    },
    "augsburg": {
        "augsburg_hsi.mat": "2f13839d7840b32f55e0489d6934776dcfded7f678e23a9d8c2c092573946583",
        "augsburg_sar.mat": "cd1dbfad2346f47e51d105b05e11aaefc872fe487a94bdc2913f4eaee3f8e82b",
        "data_DSM.mat": "b4c59568e38ce472db43672f3f1aa41eab9d43d8c95faa0dc0623573b59d765b",
    },
}

CLASS_NAMES = {
    "trento": ["apple trees", "buildings", "ground", "woods", "vineyard", "roads"],
    "houston2013": ["healthy grass", "stressed grass", "synthetic grass", "trees", "soil", "water",
                    "residential", "commercial", "road", "highway", "railway", "parking lot 1",
                    "parking lot 2", "tennis court", "running track"],
    "muufl": ["trees", "mostly grass", "mixed ground surface", "dirt and sand", "road", "water",
              "building shadow", "buildings", "sidewalk", "yellow curb", "cloth panels"],
    "augsburg": ["forest", "residential area", "industrial area", "low plants", "allotment",
                 "commercial area", "water"],
    "dfc2018_crop": [f"class_{i}" for i in range(1, 13)],  # the crop's class names are not known for sure
    # The split's ids are reordered against the usual Indian Pines numbering (see ../shared/data).
    "indian_pines_msi": ["corn-notill", "corn-mintill", "corn", "grass-pasture", "grass-trees",
                         "hay-windrowed", "soybean-notill", "soybean-mintill", "soybean-clean", "wheat",
                         "woods", "buildings-grass-trees-drives", "stone-steel-towers", "alfalfa",
                         "grass-pasture-mowed", "oats"],
}

CLASS_NAMES["indian_pines_msi_blocks"] = CLASS_NAMES["indian_pines_msi"]
CLASS_NAMES.update({
    "salinas_a": ["broccoli green weeds 1", "corn senesced green weeds", "lettuce romaine 4 wk",
                  "lettuce romaine 5 wk", "lettuce romaine 6 wk", "lettuce romaine 7 wk"],
    "indian_pines_crop": ["corn-notill", "grass-trees", "soybean-notill", "soybean-mintill"],
    "dfc2018_houston_crop": [f"class_{i}" for i in range(1, 13)],   # the data's author gives no names
    "samson": ["tree", "soil", "water"],
})
# Source class ids of the real scenes, in the order of their names above (renumbered 1..N).
SALINAS_A_IDS = (1, 10, 11, 12, 13, 14)
INDIAN_CROP_IDS = (2, 6, 10, 11)
SAMSON_IDS = (4, 5, 6)
# Block edge (px) of the seeded spatially disjoint split of the real scenes: about an eighth of the side.
SCENE_BLOCKS = {"salinas_a": 10, "indian_pines_crop": 10, "dfc2018_houston_crop": 16, "samson": 12,
                "indian_pines_msi_blocks": 18}

DATASETS = tuple(CLASS_NAMES)
# Datasets without an official split: the split is drawn from a seed (one per benchmark seed).
SEEDED_SPLIT = ("muufl", "dfc2018_crop") + tuple(SCENE_BLOCKS)
DFC_BLOCK = 30            # dfc2018_crop: blocks of 30×30 px (100 blocks), half of them test
DFC_TEST_FRACTION = 0.5
MUUFL_DEFAULT_TRAIN = "20"  # per class; "150" or "5%" are the other usual choices


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(dataset, path, log, strict=True):
    """Check an official file's SHA-256. Returns the digest.

    A known official name with another digest is an error (`strict`) or a warning; a name outside
    the table gets a warning that it could not be verified.
    """
    name = os.path.basename(path)
    digest = sha256_of(path)
    expected = OFFICIAL_SHA256.get(dataset, {}).get(name)
    if expected is None:
        log(f"{dataset}: {name} is not one of the official files with a known SHA-256; it was not verified "
            f"(sha256 {digest[:16]}…).", "warning")
    elif digest != expected:
        message = (f"{dataset}: {name} is not the official file: its SHA-256 is {digest}, "
                   f"the official {name} has {expected}.")
        if strict:
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, message,
                                "Use the official file (re-download it), or pass --skip-checksums to run on this "
                                "copy anyway; results on a modified file are not comparable with the literature.")
        log(message + " Going on (--skip-checksums): results are not comparable with the literature.", "warning")
    return digest


def _load_v73(path, names):
    try:
        import h5py
    except ImportError as exc:
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE,
                            f"{os.path.basename(path)} is a MATLAB v7.3 (HDF5) file, which needs h5py to read.",
                            "Install it into the backend environment: .venv/bin/pip install h5py "
                            "(or re-save the file in MATLAB with save(..., '-v7')).") from exc
    out = {}
    with h5py.File(path, "r") as f:
        for key in f.keys():
            if key.startswith("#"):
                continue
            item = f[key]
            if isinstance(item, h5py.Dataset) and item.ndim >= 1:
                out[key] = np.asarray(item).T  # HDF5 holds MATLAB's column-major arrays with dims reversed
    return out


def load_mat(path, names=None):
    """The arrays in a .mat file as {variable: ndarray} (v5 through scipy, v7.3 through h5py)."""
    import scipy.io
    if not os.path.isfile(path):
        raise LandFuseError(ErrorCode.INPUT_NOT_FOUND, f"Missing benchmark file: {path}")
    try:
        data = scipy.io.loadmat(path)
    except NotImplementedError:  # scipy's answer to a v7.3 (HDF5) file
        return _load_v73(path, names)
    except Exception as exc:
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE,
                            f"{os.path.basename(path)} cannot be read as a MATLAB file: {exc}",
                            "The file may be truncated; re-download it.") from exc
    return {k: v for k, v in data.items() if not k.startswith("__") and isinstance(v, np.ndarray)}


def mat_array(path, names=(), ndim=None):
    """One array from a .mat file: the first of `names` present, else the only array of `ndim` dims."""
    arrays = load_mat(path, names)
    for name in names:
        if name in arrays:
            return arrays[name]
    candidates = [v for v in arrays.values() if v.dtype != object and (ndim is None or v.ndim in ndim)]
    if len(candidates) == 1:
        return candidates[0]
    raise LandFuseError(ErrorCode.INPUT_UNREADABLE,
                        f"{os.path.basename(path)}: cannot tell which variable holds the data "
                        f"(expected one of {', '.join(names) or 'a single array'}; "
                        f"found {', '.join(arrays) or 'none'}).")


def class_table(dataset):
    from backend.io.labels import default_color
    return [{"value": i + 1, "name": name, "color": default_color(i + 1)}
            for i, name in enumerate(CLASS_NAMES[dataset])]


def write_raster(path: str, data: np.ndarray, tags: Optional[Dict[str, str]] = None, dtype: str = "float32",
                 band_tags: Optional[List[Dict[str, str]]] = None) -> str:
    """A CRS-less GeoTIFF (identity transform), written atomically: lined up with its partners by array
    position. `band_tags`: one dict of metadata items per band (e.g. `wavelength`, `fwhm`)."""
    import rasterio
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype=dtype)
    if data.shape[1] >= 256 and data.shape[2] >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    if dtype == "uint8":
        profile.update(nodata=0, compress="deflate")
    with warnings.catch_warnings(), atomic_path(path) as part:
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning: intended
        with rasterio.open(part, "w", **profile) as dst:
            dst.write(data.astype(dtype))
            if tags:
                dst.update_tags(**tags)
            for band, items in enumerate(band_tags or (), start=1):
                dst.update_tags(band, **items)
    return path


def write_labels(path: str, labels: np.ndarray, classes: List[dict], note: str = "") -> str:
    tags = {"LANDFUSE_CLASSES": json.dumps(classes)}
    if note:
        tags["split"] = note
    return write_raster(path, labels.astype(np.uint8), tags, dtype="uint8")


def _cube(array, rows_cols=None, name="HSI"):
    """(rows, cols, bands) or (rows, cols) MATLAB layout → float32 (bands, rows, cols)."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE,
                            f"The {name} array has {array.ndim} dimensions; expected 2 or 3.")
    if rows_cols is not None and array.shape[:2] != tuple(rows_cols):
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE,
                            f"The {name} array is {array.shape[0]}×{array.shape[1]} px but the labels are "
                            f"{rows_cols[0]}×{rows_cols[1]} px.")
    return np.ascontiguousarray(np.transpose(array, (2, 0, 1)).astype(np.float32))


def _labels(array):
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.integer):
        array = np.where(np.isfinite(array), np.round(array), 0)
    array = array.astype(np.int64)
    array[(array < 0) | (array > 255)] = 0
    return array


def per_class_draw(labels, spec, seed):
    """Train labels drawn per class: `spec` "20" (N per class; all when fewer) or "5%" (fraction)."""
    rng = np.random.default_rng(seed)
    spec = str(spec).strip()
    out = np.zeros_like(labels)
    for c in sorted(int(v) for v in np.unique(labels) if v > 0):
        idx = np.flatnonzero(labels == c)
        if spec.endswith("%"):
            n = max(1, int(round(float(spec[:-1]) / 100 * idx.size)))
        else:
            n = int(spec)
        pick = rng.choice(idx, min(n, idx.size), replace=False)
        out.flat[pick] = c
    return out


def _find(data_dir, *names):
    for name in names:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    return None


def _need(data_dir, dataset, *names):
    path = _find(data_dir, *names)
    if path is None:
        raise LandFuseError(ErrorCode.INPUT_NOT_FOUND,
                            f"{dataset}: none of {', '.join(names)} is in {data_dir}.",
                            "Point --data-dir at the folder holding the dataset's official files.")
    return path


def _read_tif(path):
    import rasterio
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as src:
            return src.read()


# --- one reader per dataset: returns (hsi (B,H,W), {aux name: (B,H,W)}, train, test, files, split note)

def _read_trento(d, log, check, seed, train_size):
    tr = _labels(mat_array(_need(d, "trento", "TRLabel.mat"), ("TRLabel",), (2,)))
    ts = _labels(mat_array(_need(d, "trento", "TSLabel.mat"), ("TSLabel",), (2,)))
    hsi_path = _need(d, "trento", "HSI.mat", "Italy_hsi.mat")
    lidar_path = _need(d, "trento", "LiDAR.mat", "Italy_lidar.mat")
    files = [check(p) for p in (hsi_path, lidar_path)]
    hsi = _cube(mat_array(hsi_path, ("HSI", "data"), (3,)), tr.shape)
    lidar = _cube(mat_array(lidar_path, ("LiDAR", "data"), (2, 3)), tr.shape, "LiDAR")
    return hsi, {"lidar": lidar[:1]}, tr, ts, files, "official split (TRLabel / TSLabel)"


def _read_houston(d, log, check, seed, train_size):
    tr = _labels(mat_array(_need(d, "houston2013", "TRLabel.mat"), ("TRLabel",), (2,)))
    ts = _labels(mat_array(_need(d, "houston2013", "TSLabel.mat"), ("TSLabel",), (2,)))
    hsi_path = _need(d, "houston2013", "HSI.mat", "CASI.tif")
    lidar_path = _need(d, "houston2013", "LiDAR.mat", "LiDAR.tif")
    files = [check(p) for p in (hsi_path, lidar_path)]
    if hsi_path.endswith(".tif"):
        hsi = _read_tif(hsi_path).astype(np.float32)
    else:
        hsi = _cube(mat_array(hsi_path, ("HSI", "houston_hsi"), (3,)), tr.shape)
    if lidar_path.endswith(".tif"):
        lidar = _read_tif(lidar_path).astype(np.float32)
    else:
        lidar = _cube(mat_array(lidar_path, ("LiDAR", "houston_lidar"), (2, 3)), tr.shape, "LiDAR")
    for name, a in (("HSI", hsi), ("LiDAR", lidar)):
        if a.shape[1:] != tr.shape:
            raise LandFuseError(ErrorCode.INPUT_UNREADABLE, f"houston2013: the {name} raster is {a.shape[1]}×"
                                f"{a.shape[2]} px but the labels are {tr.shape[0]}×{tr.shape[1]} px.")
    return hsi, {"lidar": lidar}, tr, ts, files, "official GRSS DFC2013 split (TRLabel / TSLabel)"


def _read_muufl(d, log, check, seed, train_size):
    gt = _labels(mat_array(_need(d, "muufl", "gt.mat"), ("gt",), (2,)))
    hsi_path = _need(d, "muufl", "HSI.mat")
    lidar_path = _need(d, "muufl", "LiDAR.mat")
    files = [check(p) for p in (hsi_path, lidar_path)]
    hsi = _cube(mat_array(hsi_path, ("HSI", "hsi"), (3,)), gt.shape)
    lidar = _cube(mat_array(lidar_path, ("LiDAR", "lidar"), (2, 3)), gt.shape, "LiDAR")
    spec = train_size or MUUFL_DEFAULT_TRAIN
    tr = per_class_draw(gt, spec, seed)
    ts = np.where(tr > 0, 0, gt)
    unit = "" if str(spec).endswith("%") else " per class"
    note = f"no official split: {spec}{unit} drawn at random (seed {seed}), rest test"
    return hsi, {"lidar": lidar}, tr, ts, files, note


def _read_augsburg(d, log, check, seed, train_size):
    tr = _labels(mat_array(_need(d, "augsburg", "TrainImage.mat"), ("TrainImage",), (2,)))
    ts = _labels(mat_array(_need(d, "augsburg", "TestImage.mat"), ("TestImage",), (2,)))
    hsi_path = _need(d, "augsburg", "augsburg_hsi.mat")
    aux = {}
    files = [check(hsi_path)]
    hsi = _cube(mat_array(hsi_path, ("augsburg_hsi", "data", "HSI"), (3,)), tr.shape)
    for name, file, variables in (("dsm", "data_DSM.mat", ("data_DSM", "DSM")),
                                  ("sar", "augsburg_sar.mat", ("augsburg_sar", "data", "SAR"))):
        path = _find(d, file)
        if path:
            files.append(check(path))
            aux[name] = _cube(mat_array(path, variables, (2, 3)), tr.shape, name.upper())
    if not aux:
        log("augsburg: neither data_DSM.mat nor augsburg_sar.mat found: HSI only.", "warning")
    return hsi, aux, tr, ts, files, "official split (TrainImage / TestImage, Hong et al. 2021)"


def _read_dfc2018_crop(d, log, check, seed, train_size):
    hsi_path = _need(d, "dfc2018_crop", "DATA_pca_5.mat")
    dsm_path = _need(d, "dfc2018_crop", "DATA_DSM.mat")
    files = [check(p) for p in (hsi_path, dsm_path)]
    gt = _labels(mat_array(dsm_path, ("GT_300",), (2,)))
    hsi = _cube(mat_array(hsi_path, ("HSI_pca",), (3,)), gt.shape)
    dsm = _cube(mat_array(dsm_path, ("DSM_300",), (2,)), gt.shape, "DSM")
    tr, ts, note = block_split(gt, seed)
    return hsi, {"dsm": dsm}, tr, ts, files, note


def _read_indian_pines_msi(d, log, check, seed, train_size):
    hsi_path = _need(d, "indian_pines_msi", "MSI_IndinePine.mat")
    tr_path = _need(d, "indian_pines_msi", "IndianTR123_temp123.tif")
    ts_path = _need(d, "indian_pines_msi", "IndianTE123_temp123.tif")
    files = [check(hsi_path)]
    tr = _labels(_read_tif(tr_path)[0])
    ts = _labels(_read_tif(ts_path)[0])
    hsi = _cube(mat_array(hsi_path, ("data_MS_HR",), (3,)), tr.shape)
    return hsi, {}, tr, ts, files, "standard split (IndianTR123 / IndianTE123)"


def _band_items(centres, fwhm=None):
    """Per-band metadata items (nm) the way backend.io.spectral reads them back."""
    items = []
    for i, c in enumerate(centres):
        item = {"wavelength": f"{float(c):.3f}", "wavelength_units": "Nanometers"}
        if fwhm is not None:
            item["fwhm"] = f"{float(fwhm[i]):.3f}"
        items.append(item)
    return items


def _csv_columns(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                rows.append([float(v) for v in line.split(",")])
    return [list(col) for col in zip(*rows)]


def _renumber(gt, values):
    """Class ids `values` (in that order) → 1..len(values); anything else 0."""
    out = np.zeros_like(gt)
    for i, v in enumerate(values, start=1):
        out[gt == v] = i
    return out


def _read_salinas_a(d, log, check, seed, train_size):
    cube_path = _need(d, "salinas_a", "SalinasA_corrected.mat")
    gt_path = _need(d, "salinas_a", "SalinasA_gt.mat")
    files = [check(p) for p in (cube_path, gt_path)]
    gt = _renumber(_labels(mat_array(gt_path, ("salinasA_gt",), (2,))), SALINAS_A_IDS)
    hsi = _cube(mat_array(cube_path, ("salinasA_corrected",), (3,)), gt.shape)
    bands = None
    wl_path = _find(d, "wavelengths_204_APPROX_generic_AVIRIS.csv")
    if wl_path:
        centres = _csv_columns(wl_path)[0]
        if len(centres) == hsi.shape[0]:
            bands = _band_items(centres)
            log("salinas_a: band centres are approximate (a generic AVIRIS table, not this flight's calibration)",
                "warning")
    tr, ts, note = block_split(gt, seed, SCENE_BLOCKS["salinas_a"])
    return hsi, {}, tr, ts, files, note, bands


def _read_indian_pines_crop(d, log, check, seed, train_size):
    cube_path = _need(d, "indian_pines_crop", "Indian_part_85x70.mat")
    gt_path = _need(d, "indian_pines_crop", "Indian_part_85x70_gt_originalIDs.npy")
    wl_path = _need(d, "indian_pines_crop", "wavelengths_200_from_92AV3C.csv")
    files = [check(p) for p in (cube_path, gt_path)]
    gt = _renumber(_labels(np.load(gt_path)), INDIAN_CROP_IDS)
    hsi = _cube(mat_array(cube_path, ("X",), (3,)), gt.shape)
    centres, fwhm = _csv_columns(wl_path)[:2]
    if len(centres) != hsi.shape[0]:
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE, f"indian_pines_crop: {len(centres)} band centres for "
                            f"{hsi.shape[0]} bands in {os.path.basename(wl_path)}.")
    tr, ts, note = block_split(gt, seed, SCENE_BLOCKS["indian_pines_crop"])
    return hsi, {}, tr, ts, files, note, _band_items(centres, fwhm)


def majority_labels(fine: np.ndarray, factor: int, min_share: float = 0.5) -> np.ndarray:
    """One label per `factor`×`factor` cell of a finer label grid: the most frequent class, kept only
    when it covers at least `min_share` of the cell (0 = unlabelled never wins)."""
    h, w = fine.shape[0] // factor, fine.shape[1] // factor
    cells = fine[:h * factor, :w * factor].reshape(h, factor, w, factor).transpose(0, 2, 1, 3).reshape(h, w, -1)
    top = int(cells.max())
    counts = np.stack([(cells == k).sum(-1) for k in range(1, top + 1)], -1)
    best = counts.argmax(-1) + 1
    return np.where(counts.max(-1) >= min_share * factor * factor, best, 0).astype(np.int64)


def _read_dfc2018_houston_crop(d, log, check, seed, train_size):
    path = _need(d, "dfc2018_houston_crop", "houston_dataset.mat")
    files = [check(path)]
    arrays = load_mat(path)
    cube = np.asarray(arrays["hyprImg"])
    fine = _labels(arrays["clasLabs"])
    factor = fine.shape[0] // cube.shape[0]
    if factor < 1 or fine.shape[0] != factor * cube.shape[0] or fine.shape[1] != factor * cube.shape[1]:
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE, f"dfc2018_houston_crop: labels {fine.shape} are not a whole "
                            f"multiple of the HSI grid {cube.shape[:2]}.")
    gt = majority_labels(fine, factor)
    hsi = _cube(cube, gt.shape)
    tr, ts, note = block_split(gt, seed, SCENE_BLOCKS["dfc2018_houston_crop"])
    note += f"; labels: majority class of each {factor}×{factor} cell of the finer label grid (≥ half of it)"
    return hsi, {}, tr, ts, files, note


def _read_samson(d, log, check, seed, train_size):
    import rasterio

    from backend.io.spectral import band_wavelengths
    img_path = _need(d, "samson", "samson_1.img")
    lab_path = _need(d, "samson", "samson_labels.tif")
    files = [check(p) for p in (img_path, lab_path)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(img_path) as src:
            hsi = src.read().astype(np.float32)
            centres, fwhm, _ = band_wavelengths(src)
    gt = _renumber(_labels(_read_tif(lab_path)[0]), SAMSON_IDS)
    if hsi.shape[1:] != gt.shape:
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE, f"samson: image {hsi.shape[1:]} vs labels {gt.shape}.")
    tr, ts, note = block_split(gt, seed, SCENE_BLOCKS["samson"])
    return hsi, {}, tr, ts, files, note, _band_items(centres, fwhm) if centres else None


def _read_indian_pines_msi_blocks(d, log, check, seed, train_size):
    hsi, aux, tr, ts, files, _ = _read_indian_pines_msi(d, log, check, seed, train_size)
    tr, ts, note = block_split(np.maximum(tr, ts), seed, SCENE_BLOCKS["indian_pines_msi_blocks"])
    return hsi, aux, tr, ts, files, note + " (standard train ∪ test labels re-split)"


READERS = {"trento": _read_trento, "houston2013": _read_houston, "muufl": _read_muufl,
           "augsburg": _read_augsburg, "dfc2018_crop": _read_dfc2018_crop,
           "indian_pines_msi": _read_indian_pines_msi, "indian_pines_msi_blocks": _read_indian_pines_msi_blocks,
           "salinas_a": _read_salinas_a, "indian_pines_crop": _read_indian_pines_crop,
           "dfc2018_houston_crop": _read_dfc2018_houston_crop, "samson": _read_samson}


def block_split(gt: np.ndarray, seed: int, block: int = DFC_BLOCK,
                test_fraction: float = DFC_TEST_FRACTION) -> Tuple[np.ndarray, np.ndarray, str]:
    """Spatially disjoint train/test labels by whole blocks (backend.synth.labels.split_label_array, the
    split `split-labels` writes as rasters). Returns (train, test, split note), int64, 0 = unlabelled."""
    from backend.synth.labels import split_label_array
    # as the uint8 label rasters the split was once written through: same labels, same result
    tr, ts, _ = split_label_array(gt.astype(np.uint8), block=block, test_fraction=test_fraction, seed=seed)
    tr, ts = _labels(tr), _labels(ts)
    note = (f"no official split: spatially disjoint blocks of {block}×{block} px, {int(test_fraction * 100)} % "
            f"of the labelled blocks test (seed {seed}); not comparable with published figures")
    return tr, ts, note


def prepare(dataset, data_dir, work_dir, log=lambda message, level="info": None, seed=0, train_size=None,
            strict=True, checked=None):
    """Read `dataset` from `data_dir` and write hsi.tif, aux_*.tif, train.tif, test.tif into `work_dir`.

    `seed` draws the split of datasets without an official one (SEEDED_SPLIT); `train_size` is MUUFL's
    training set ("20", "150" per class or "5%"). `checked` (a dict) remembers digests across calls so
    a file is hashed once. Returns a description dict (paths, split, class counts, files).
    """
    if dataset not in READERS:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"Unknown dataset {dataset!r}",
                            f"Known datasets: {', '.join(DATASETS)}.")
    data_dir = os.path.abspath(data_dir)
    if not os.path.isdir(data_dir):
        raise LandFuseError(ErrorCode.INPUT_NOT_FOUND, f"The data folder does not exist: {data_dir}")
    checked = {} if checked is None else checked

    def check(path):
        if path not in checked:
            checked[path] = verify_file(dataset, path, log, strict)
        return {"file": os.path.basename(path), "sha256": checked[path],
                "official": OFFICIAL_SHA256.get(dataset, {}).get(os.path.basename(path)) == checked[path]}

    read = READERS[dataset](data_dir, log, check, seed, train_size)
    hsi, aux, train, test, files, note = read[:6]
    hsi_band_tags = read[6] if len(read) > 6 else None   # band centres/FWHM where the data has them
    overlap = int(((train > 0) & (test > 0)).sum())
    if overlap:
        raise LandFuseError(ErrorCode.BAD_LABELS, f"{dataset}: {overlap} pixels are labelled in both train and test.")
    classes = class_table(dataset)
    top = max(int(train.max()), int(test.max()))
    if top > len(classes):
        from backend.io.labels import default_color
        classes += [{"value": v, "name": f"class_{v}", "color": default_color(v)}
                    for v in range(len(classes) + 1, top + 1)]
    os.makedirs(work_dir, exist_ok=True)
    out = {"dataset": dataset, "data_dir": data_dir, "split": note, "files": files,
           "shape": [int(hsi.shape[1]), int(hsi.shape[2])], "hsi_bands": int(hsi.shape[0])}
    out["hsi"] = write_raster(os.path.join(work_dir, "hsi.tif"), hsi, band_tags=hsi_band_tags)
    out["wavelengths"] = bool(hsi_band_tags)
    out["aux"] = [write_raster(os.path.join(work_dir, f"aux_{name}.tif"), array) for name, array in aux.items()]
    out["aux_names"] = list(aux)
    out["train"] = write_labels(os.path.join(work_dir, "train.tif"), train, classes, note)
    out["test"] = write_labels(os.path.join(work_dir, "test.tif"), test, classes, note)
    present = sorted(set(np.unique(train[train > 0]).tolist()) | set(np.unique(test[test > 0]).tolist()))
    out["classes"] = [c for c in classes if c["value"] in present]
    out["train_pixels"] = {str(c): int((train == c).sum()) for c in present}
    out["test_pixels"] = {str(c): int((test == c).sum()) for c in present}
    write_json_atomic(os.path.join(work_dir, "dataset.json"), out, indent=2)
    log(f"{dataset}: {hsi.shape[2]}×{hsi.shape[1]} px, {hsi.shape[0]} HSI bands, aux {list(aux) or 'none'}; "
        f"{int((train > 0).sum())} train / {int((test > 0).sum())} test px; {note}")
    return out


def subsample_labels(train_path, out_path, per_class, seed):
    """A train label raster with at most `per_class` pixels of each class (seeded)."""
    import rasterio
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(train_path) as src:
            labels = src.read(1).astype(np.int64)
            tags = src.tags()
    picked = per_class_draw(labels, str(int(per_class)), seed)
    classes = json.loads(tags["LANDFUSE_CLASSES"]) if "LANDFUSE_CLASSES" in tags else []
    write_labels(out_path, picked, classes, f"{tags.get('split', '')}; {per_class} train px per class (seed {seed})")
    return {str(c): int((picked == c).sum()) for c in sorted(int(v) for v in np.unique(picked) if v > 0)}
