"""landfuse:classify_batch — many scenes (files or a folder) into a folder of land-cover maps, on a
local Dask cluster or a running scheduler (`python -m backend classify-batch`).

Every parameter is a plain value (layers, a folder, strings, numbers), so the algorithm runs in
Processing's batch mode (one row per archive or region) and in the graphical modeler, where its
map list (OUTPUT_MAPS) and counts feed the next step. A scene that fails does not fail the run:
each is reported in the log and counted in SCENES_FAILED, and the summary file lists them all.
"""

import json
import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..backend_api import DEFAULT_TILE_SIZE
from ..params import TILE_SIZE_HELP, ClassifyBatchParams
from ..preflight import raster_path
from . import keys
from .common import (
    ClassStyler,
    LandFuseAlgorithm,
    add_device,
    add_min_confidence,
    add_model_folder,
    check_model_folder,
    device_choice,
    tr,
    with_help,
)

# More maps than this are written but not opened in the project (an archive of thousands would
# bury it); the summary and OUTPUT_MAPS still name every one.
MAX_MAPS_LOADED = 50
SCHEDULER_SCHEMES = ("tcp://", "tls://", "ws://", "wss://", "ucx://")


def _advanced(param):
    param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return param


class ClassifyBatch(LandFuseAlgorithm):
    def name(self):
        return "classify_batch"

    def displayName(self):
        return tr("Classify many rasters (batch, Dask cluster)")

    def shortHelpString(self):
        return tr("Classifies many hyperspectral scenes, or one large mosaic, with a LandFuse model package and "
                  "writes NAME_classes.tif (+ .qml legend, + optional NAME_confidence.tif) for each into the output "
                  "folder, with classify_batch.json listing every scene's status, outputs and errors. The work is "
                  "split into windows and spread over a local Dask cluster (one worker per core by default) or "
                  "over a running Dask scheduler (tcp://host:8786) whose workers run the LandFuse backend and see "
                  "the same files. Auxiliary rasters are either one raster per modality used for every scene "
                  "(e.g. a DSM mosaic) or found by a name pattern such as {stem}_dsm.tif beside each scene. "
                  "Rerunning into the same folder skips the scenes already done; a failed scene is reported "
                  "and does not stop the others.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterMultipleLayers(
            keys.INPUT_RASTERS, tr("Hyperspectral rasters"), QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            keys.INPUT_FOLDER, tr("…or a folder of hyperspectral rasters"), QgsProcessingParameterFile.Folder,
            optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            keys.AUX_LAYERS, tr("Auxiliary rasters for every scene (one per modality, e.g. a DSM mosaic)"),
            QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterString(
            keys.AUX_PATTERN, tr("…or auxiliary file name patterns beside each scene ({stem}_dsm.tif; several "
                                 "separated by ;)"), optional=True))
        add_model_folder(self, tr("Model package folder"))
        add_device(self)
        self.addParameter(QgsProcessingParameterBoolean(keys.WRITE_CONFIDENCE, tr("Write confidence rasters"),
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterString(
            keys.SCHEDULER, tr("Dask scheduler address (empty: a local cluster on this computer)"), optional=True))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            keys.WORKERS, tr("Local cluster workers (0: one per core)"), QgsProcessingParameterNumber.Integer,
            defaultValue=0, minValue=0, maxValue=1024)))
        self.addParameter(_advanced(with_help(QgsProcessingParameterNumber(
            keys.TILE_SIZE, tr("Tile size (pixels)"), QgsProcessingParameterNumber.Integer,
            defaultValue=DEFAULT_TILE_SIZE, minValue=16, maxValue=4096), TILE_SIZE_HELP)))
        self.addParameter(QgsProcessingParameterBoolean(
            keys.LOAD_MAPS, tr(f"Open the class maps when done (up to {MAX_MAPS_LOADED})"), defaultValue=True))
        self.addParameter(QgsProcessingParameterFolderDestination(keys.OUTPUT_FOLDER, tr("Output folder")))
        add_min_confidence(self)
        self.addOutput(QgsProcessingOutputFile(keys.OUTPUT_SUMMARY, tr("Batch summary (JSON)")))
        self.addOutput(QgsProcessingOutputMultipleLayers(keys.OUTPUT_MAPS, tr("Class maps")))
        self.addOutput(QgsProcessingOutputNumber(keys.SCENES_OK, tr("Scenes classified")))
        self.addOutput(QgsProcessingOutputNumber(keys.SCENES_FAILED, tr("Scenes failed")))
        self.addOutput(QgsProcessingOutputNumber(keys.SCENES_SKIPPED, tr("Scenes skipped (already done)")))

    # --- parameters → job ----------------------------------------------------------------------

    def _inputs(self, parameters, context):
        paths = []
        if parameters.get(keys.INPUT_RASTERS):
            for layer in self.parameterAsLayerList(parameters, keys.INPUT_RASTERS, context):
                path = raster_path(layer)
                if not path:
                    raise QgsProcessingException(tr(f"Layer '{layer.name()}' must be a raster file on disk."))
                paths.append(path)
        folder = self.parameterAsFile(parameters, keys.INPUT_FOLDER, context) if parameters.get(keys.INPUT_FOLDER) else ""
        if folder:
            paths.append(folder)
        return paths

    def _aux(self, parameters, context):
        if not parameters.get(keys.AUX_LAYERS):
            return []
        paths = []
        for layer in self.parameterAsLayerList(parameters, keys.AUX_LAYERS, context):
            path = raster_path(layer)
            if not path:
                raise QgsProcessingException(tr(f"Auxiliary layer '{layer.name()}' must be a raster file on disk."))
            paths.append(path)
        return paths

    def _patterns(self, parameters, context):
        text = self.parameterAsString(parameters, keys.AUX_PATTERN, context) or ""
        return [p.strip() for p in text.split(";") if p.strip()]

    def preflight(self, parameters, context, result):
        check_model_folder(self, parameters, context, result)
        try:
            inputs = self._inputs(parameters, context)
            aux = self._aux(parameters, context)
        except QgsProcessingException as exc:
            result.error(str(exc))
            return
        if not inputs:
            result.error(tr("Give hyperspectral rasters or a folder of them."))
        folder = self.parameterAsFile(parameters, keys.INPUT_FOLDER, context) if parameters.get(keys.INPUT_FOLDER) else ""
        if folder and not os.path.isdir(folder):
            result.error(tr(f"The input folder does not exist: {folder}"))
        if aux and self._patterns(parameters, context):
            result.error(tr("Give auxiliary rasters or name patterns, not both."))
        scheduler = (self.parameterAsString(parameters, keys.SCHEDULER, context) or "").strip()
        if scheduler and not scheduler.startswith(SCHEDULER_SCHEMES) and ":" not in scheduler:
            result.error(tr(f"The scheduler address should look like tcp://host:8786, not {scheduler!r}."))

    def backend_job(self, parameters, context) -> ClassifyBatchParams:
        workers = self.parameterAsInt(parameters, keys.WORKERS, context)
        return ClassifyBatchParams(
            inputs=self._inputs(parameters, context), aux=self._aux(parameters, context),
            aux_patterns=self._patterns(parameters, context),
            model_dir=self.parameterAsFile(parameters, keys.MODEL_FOLDER, context),
            out_dir=self.parameterAsString(parameters, keys.OUTPUT_FOLDER, context),
            scheduler=(self.parameterAsString(parameters, keys.SCHEDULER, context) or "").strip() or None,
            workers=workers or None, device=device_choice(self, parameters, context),
            tile_size=self.parameterAsInt(parameters, keys.TILE_SIZE, context),
            confidence=self.parameterAsBool(parameters, keys.WRITE_CONFIDENCE, context),
            min_confidence=self.parameterAsDouble(parameters, keys.MIN_CONFIDENCE, context))

    # --- the run -------------------------------------------------------------------------------

    def processAlgorithm(self, parameters, context, feedback):
        job = self.backend_job(parameters, context)
        if not job.inputs:
            raise QgsProcessingException(tr("Give hyperspectral rasters or a folder of them."))
        os.makedirs(job.out_dir, exist_ok=True)
        result = self.run_backend(job.command, job.backend_args(), feedback)
        summary_path = result.get("outputs", {}).get("summary") or os.path.join(job.out_dir, "classify_batch.json")
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
        maps = []
        for scene in summary.get("scenes", []):
            if scene["status"] == "failed":
                error = scene.get("error") or {}
                feedback.reportError(tr(f"{scene['input']}: {error.get('message', 'failed')}"), False)
            elif scene.get("outputs", {}).get("classes"):
                maps.append(scene["outputs"]["classes"])
        totals = summary.get("totals", {})
        feedback.pushInfo(tr(f"{totals.get('ok', 0)} classified, {totals.get('skipped', 0)} skipped (already done), "
                             f"{totals.get('failed', 0)} failed; summary: {summary_path}"))
        if self.parameterAsBool(parameters, keys.LOAD_MAPS, context):
            self._load(maps, result.get("class_table") or [], context, feedback)
        return {keys.OUTPUT_FOLDER: job.out_dir, keys.OUTPUT_SUMMARY: summary_path, keys.OUTPUT_MAPS: maps,
                keys.SCENES_OK: totals.get("ok", 0), keys.SCENES_FAILED: totals.get("failed", 0),
                keys.SCENES_SKIPPED: totals.get("skipped", 0)}

    def _load(self, maps, class_table, context, feedback):
        if len(maps) > MAX_MAPS_LOADED:
            feedback.pushInfo(tr(f"{len(maps)} maps: not opened in the project (more than {MAX_MAPS_LOADED})."))
            return
        for path in maps:
            details = QgsProcessingContext.LayerDetails(os.path.basename(os.path.splitext(path)[0]),
                                                        context.project(), keys.OUTPUT_MAPS)
            details.setPostProcessor(ClassStyler.create(class_table))
            context.addLayerToLoadOnCompletion(path, details)
