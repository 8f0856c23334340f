"""The QGIS plugin object: menu + toolbar actions, the dock, the Processing provider, clean unload."""

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .paths import resource

MENU = "&LandFuse"


class LandFusePlugin:
    def __init__(self, iface):
        self.iface = iface
        self.actions = []
        self.toolbar = None
        self.dock = None
        self.provider = None
        self.dialogs = []

    # --- Processing -------------------------------------------------------------------------
    def initProcessing(self):
        from .processing.provider import LandFuseProvider
        if self.provider is None:
            self.provider = LandFuseProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    # --- GUI ------------------------------------------------------------------------------------
    def _action(self, text, callback, icon="icon.svg", checkable=False, toolbar=True):
        action = QAction(QIcon(resource(icon)), text, self.iface.mainWindow())
        action.setObjectName("landfuse_" + "".join(c for c in text.lower() if c.isalnum()))
        action.setCheckable(checkable)
        action.triggered.connect(callback)
        self.iface.addPluginToRasterMenu(MENU, action)
        if toolbar and self.toolbar is not None:
            self.toolbar.addAction(action)
        self.actions.append(action)
        return action

    def initGui(self):
        self.initProcessing()
        self.toolbar = self.iface.addToolBar("LandFuse")
        self.toolbar.setObjectName("LandFuseToolbar")
        self.dock_action = self._action("LandFuse classifier", self.toggle_dock, checkable=True)
        self._action("New labelling layer…", self.new_label_layer, toolbar=False)
        self._action("Backend environment…", self.show_env_setup, toolbar=False)
        self._action("Diagnostics…", self.show_diagnostics, toolbar=False)

    def ensure_dock(self):
        if self.dock is None:
            from .dock import LandFuseDock
            self.dock = LandFuseDock(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
            self.dock.visibilityChanged.connect(self.dock_action.setChecked)
        return self.dock

    def toggle_dock(self, checked=None):
        dock = self.ensure_dock()
        visible = (not dock.isVisible()) if checked is None else bool(checked)
        dock.setVisible(visible)
        if visible:
            dock.raise_()

    def _keep(self, dialog):
        self.dialogs = [d for d in self.dialogs if _alive(d)]
        self.dialogs.append(dialog)
        dialog.show()
        return dialog

    def new_label_layer(self):
        from .labels_dialog import LabelLayerDialog
        crs, model_dir = None, None
        if self.dock is not None:
            hsi = self.dock.hsi_combo.currentLayer()
            crs = hsi.crs() if hsi is not None else None
            model_dir = self.dock.model_combo.currentData()
        dialog = LabelLayerDialog(self.iface.mainWindow(), crs, model_dir)
        # The new layer becomes the dock's labels, with the task it is for: draw, then Train.
        dialog.accepted.connect(lambda: self._use_label_layer(dialog))
        return self._keep(dialog)

    def _use_label_layer(self, dialog):
        if dialog.layer is None:
            return
        dock = self.ensure_dock()
        dock.set_labels_layer(dialog.layer, "finetune" if dialog.model_combo.currentData() else "train")
        dock.setVisible(True)
        dock.raise_()

    def show_env_setup(self):
        from .env_dialog import EnvSetupDialog
        dialog = EnvSetupDialog(self.iface.mainWindow())
        if self.dock is not None:
            dialog.finishedSetup.connect(lambda *a: self.dock._update_backend_status())
        return self._keep(dialog)

    def show_diagnostics(self):
        from .diagnostics_dialog import DiagnosticsDialog
        dialog = self._keep(DiagnosticsDialog(self.iface.mainWindow()))
        dialog.start()
        return dialog

    # --- unload -----------------------------------------------------------------------------------
    def unload(self):
        for dialog in self.dialogs:
            if _alive(dialog):
                dialog.close()
                dialog.deleteLater()
        self.dialogs = []
        if self.dock is not None:
            self.dock.teardown()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            if self.toolbar is not None:
                self.toolbar.removeAction(action)
            action.deleteLater()
        self.actions = []
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None


def _alive(obj):
    try:
        from qgis.PyQt import sip
        return not sip.isdeleted(obj)
    except (ImportError, TypeError):
        return True
