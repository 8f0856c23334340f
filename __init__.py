"""LandFuse QGIS plugin entry point (QGIS calls classFactory)."""


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    from .qgis_plugin.plugin import LandFusePlugin
    return LandFusePlugin(iface)
