"""Start the LandFuse backend in a clean environment.

Run by the *backend* interpreter (never imported by QGIS for its side effects):

    python -E -s backend_launch.py PLUGIN_ROOT COMMAND [ARGS...]

`-E` makes Python ignore PYTHONPATH/PYTHONHOME that QGIS may have set; this script then removes
QGIS's, GDAL's and PROJ's variables (rasterio ships its own GDAL and PROJ data), changes to the
plugin root and runs `python -m backend COMMAND ARGS...`. It exists because QgsBlockingProcess
(used by the Processing algorithms so that their Cancel works) has no way to pass an environment
or a working directory to the child. Pure standard library; `clean_environment` is shared with the
plugin, which also passes the cleaned environment wherever it can.
"""

import os
import runpy
import sys

# Variables that point an interpreter or a GDAL/PROJ/Qt build at QGIS's own copies.
DROP_PREFIXES = ("PYTHON", "QGIS", "GDAL_", "PROJ_", "QT_", "GISBASE", "GRASS", "OSGEO4W", "O4W_",
                 "SAGA", "OTB_", "CPL_")
DROP_NAMES = ("PROJ_LIB", "PROJ_DATA", "GDAL_DATA", "GDAL_DRIVER_PATH", "GEOTIFF_CSV",
              "LD_PRELOAD", "DYLD_INSERT_LIBRARIES", "VIRTUAL_ENV", "CONDA_PREFIX", "QT_PLUGIN_PATH")
# Kept on purpose: PATH, HOME, TMP*, locale, CUDA_* (CUDA_VISIBLE_DEVICES), OMP_*/MKL_* threads.


def clean_environment(environ):
    """A copy of `environ` without the variables that make the backend load QGIS's libraries."""
    clean = {}
    for key, value in environ.items():
        upper = key.upper()
        if upper in DROP_NAMES or upper.startswith(DROP_PREFIXES):
            continue
        clean[key] = value
    return clean


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: backend_launch.py PLUGIN_ROOT COMMAND [ARGS...]\n")
        return 2
    root = os.path.abspath(argv[1])
    env = clean_environment(os.environ)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(root)
    here = os.path.dirname(os.path.abspath(__file__))
    # The script's own folder (qgis_plugin/) must not shadow anything the backend imports.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    sys.path.insert(0, root)
    sys.argv = ["backend"] + list(argv[2:])
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass
    # Not a protocol event (no "type"): tells a caller that cannot see the child's pid
    # (QgsBlockingProcess) which process to kill if SIGTERM is not honoured in time.
    sys.stdout.write('{"landfuse_launcher": {"pid": %d}}\n' % os.getpid())
    sys.stdout.flush()
    runpy.run_module("backend", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
