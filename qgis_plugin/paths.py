"""Where things are: the plugin root (the folder holding backend/, models/, metadata.txt)."""

import configparser
import os

PLUGIN_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "backend_launch.py")


def plugin_root():
    return PLUGIN_ROOT


def models_dir(root=None):
    return os.path.join(root or PLUGIN_ROOT, "models")


def resource(name):
    return os.path.join(PLUGIN_ROOT, "resources", name)


def plugin_version(root=None):
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(os.path.join(root or PLUGIN_ROOT, "metadata.txt"), encoding="utf-8")
        return parser.get("general", "version", fallback="?")
    except configparser.Error:
        return "?"
