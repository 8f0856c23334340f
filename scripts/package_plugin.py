"""Build dist/landfuse-<version>.zip: one top-level folder `landfuse/` as the QGIS plugin repository
expects, with the plugin, the backend, the bundled models and resources — no tests, no caches."""

import configparser
import os
import sys
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN_DIR = "landfuse"
INCLUDE_FILES = ["__init__.py", "metadata.txt", "LICENSE", "README.md"]
INCLUDE_DIRS = ["qgis_plugin", "backend", "models", "resources"]
SKIP_DIRS = {"__pycache__", ".git", ".pytest_cache", "tests"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".part")


def version():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO, "metadata.txt"))
    return parser["general"]["version"]


def files_to_pack():
    yield from INCLUDE_FILES
    for top in INCLUDE_DIRS:
        for folder, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
            for f in sorted(files):
                if not f.endswith(SKIP_SUFFIXES) and not f.startswith("."):
                    yield os.path.relpath(os.path.join(folder, f), REPO)


def build(out_dir=None):
    out_dir = out_dir or os.path.join(REPO, "dist")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{PLUGIN_DIR}-{version()}.zip")
    tmp = path + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in files_to_pack():
            zf.write(os.path.join(REPO, rel), f"{PLUGIN_DIR}/{rel}")
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    zip_path = build(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"{zip_path} ({os.path.getsize(zip_path) / 1e6:.2f} MB)")
