"""Nion Swift plug-in: ptypilot's scan generator and detector on this microscope, and the
operator's panel (README, "Nion Swift bridge").

Swift loads every package in the `nionswift_plugin` namespace at start-up: put scan_driver/nion
on Swift's Python path (or `pip install` nothing: see the README) and the panel "ptypilot"
appears. The panel's logic is ptypilot_bridge.panel_model.PanelModel, tested headless; this file
only lays out widgets and puts the model's views into a Swift data item."""

from __future__ import annotations

import gettext
import os
import threading
import typing
from pathlib import Path

import numpy as np

from nion.swift import Panel, Workspace
from nion.swift.model import DataItem, Graphics
from nion.data import DataAndMetadata, Calibration
from nion.instrumentation import HardwareSource
from nion.utils import Registry

from ptypilot_bridge.bridge import Bridge
from ptypilot_bridge.mapping import RasterMapping
from ptypilot_bridge.nion import NionMicroscope
from ptypilot_bridge.panel_model import PanelModel, read_config
from ptypilot_bridge.window import FrameWindow

_ = gettext.gettext

DEFAULT_CONFIG_DIR = Path(os.environ.get("PTYPILOT_CONFIG_DIR",
                                         Path(__file__).resolve().parents[3] / "deploy" / "config"))
MAX_POINT_GRAPHICS = 500  # beyond this, only the latest positions are drawn


def find_hardware_sources():
    """Swift's primary scan device and its Ronchigram (diffraction) camera."""
    stem = Registry.get_component("stem_controller")
    scan = stem.scan_controller if stem else Registry.get_component("scan_hardware_source")
    camera = stem.ronchigram_camera if stem else Registry.get_component("ronchigram_camera_hardware_source")
    if scan is None or camera is None:
        raise RuntimeError("Swift has no scan device or no Ronchigram camera registered")
    return scan, camera


def make_client(endpoint: str):
    from ptypilot.client import Client  # models/ on the path, like build/python
    return Client(endpoint)


def raster_of(config: dict) -> tuple[int, int, float] | None:
    raster = config.get("session", {}).get("raster")
    if raster and all(k in raster for k in ("rows", "cols", "step_A")):
        return int(raster["rows"]), int(raster["cols"]), float(raster["step_A"])
    return None


class PtypilotPanel(Panel.Panel):
    def __init__(self, document_controller, panel_id: str, properties: typing.Mapping[str, typing.Any]):
        super().__init__(document_controller, panel_id, _("ptypilot"))
        ui = document_controller.ui
        self.model = PanelModel(make_client, DEFAULT_CONFIG_DIR, positions=self._positions)
        self.bridge: Bridge | None = None
        self.session_id = ""
        self.data_item = None
        self._stop_polling = threading.Event()

        column = ui.create_column_widget()
        def row(label, widget):
            r = ui.create_row_widget()
            r.add(ui.create_label_widget(label))
            r.add(widget)
            column.add(r)
            return widget

        self.serve_edit = row(_("serve"), ui.create_line_edit_widget())
        self.serve_edit.text = "tcp://127.0.0.1:5600"
        self.command_edit = row(_("bridge commands"), ui.create_line_edit_widget())
        self.command_edit.text = "tcp://127.0.0.1:5601"
        self.data_edit = row(_("bridge frames"), ui.create_line_edit_widget())
        self.data_edit.text = "tcp://127.0.0.1:5602"
        self.config_combo = row(_("config"), ui.create_combo_box_widget(self.model.configs()))
        self.policy_combo = row(_("policy"), ui.create_combo_box_widget(self.model.policies()))
        self.raster_edit = row(_("raster rows,cols,step_A"), ui.create_line_edit_widget())
        self.raster_edit.text = ""
        self.window_edit = row(_("window px"), ui.create_line_edit_widget())
        self.window_edit.text = "64"
        self.binning_edit = row(_("camera binning (empty: as set)"), ui.create_line_edit_widget())
        self.binning_edit.text = ""
        buttons = ui.create_row_widget()
        self.connect_button = ui.create_push_button_widget(_("Connect"))
        self.start_button = ui.create_push_button_widget(_("Start"))
        self.stop_button = ui.create_push_button_widget(_("Stop"))
        for b in (self.connect_button, self.start_button, self.stop_button):
            buttons.add(b)
        column.add(buttons)
        self.status_label = ui.create_label_widget(_("not connected"))
        column.add(self.status_label)
        column.add_stretch()
        self.widget = column

        self.connect_button.on_clicked = self._connect
        self.start_button.on_clicked = self._start
        self.stop_button.on_clicked = self._stop

    # --- actions -------------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self.document_controller.queue_task(lambda: setattr(self.status_label, "text", text))

    def _connect(self) -> None:
        try:
            self.model.connect(self.serve_edit.text)
            self._say(f"connected: {self.model.state()}")
        except Exception as e:
            self._say(f"connect failed: {e}")

    def _start(self) -> None:
        try:
            config_name = self.config_combo.current_item
            config = read_config(self.model.config_dir / config_name)
            raster = raster_of(config)
            if self.raster_edit.text.strip():
                r, c, s = self.raster_edit.text.split(",")
                raster = int(r), int(c), float(s)
            if raster is None:
                raise ValueError("the config names no session.raster; give rows,cols,step_A")
            if self.bridge is not None:
                self.bridge.close()
            scan, camera = find_hardware_sources()
            mapping = RasterMapping(*raster)
            binning = int(self.binning_edit.text) if self.binning_edit.text.strip() else None
            self.bridge = Bridge(NionMicroscope(scan, camera, binning), mapping,
                                 FrameWindow(int(self.window_edit.text)),
                                 self.command_edit.text, self.data_edit.text).start()
            self.session_id = ""
            self.model.start(config_name, self.policy_combo.current_item,
                             bridge_command_endpoint=self.bridge.command_endpoint,
                             bridge_data_endpoint=self.bridge.data_endpoint)
            self._stop_polling.clear()
            threading.Thread(target=self._poll_loop, daemon=True, name="ptypilot-panel-poll").start()
            self._say("running")
        except Exception as e:
            self._say(f"start failed: {e}")

    def _stop(self) -> None:
        try:
            self.model.stop()
            self._say("stopping")
        except Exception as e:
            self._say(f"stop failed: {e}")

    def _positions(self) -> np.ndarray:
        return self.bridge.positions_A() if self.bridge else np.zeros((0, 2))

    # --- the live view -------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._stop_polling.wait(0.5):
            try:
                view = self.model.poll()
            except Exception as e:
                self._say(f"poll failed: {e}")
                continue
            if view.changed and view.image is not None:
                self.document_controller.queue_task(lambda v=view: self._show(v))
            done = f", {view.sub_sequence} sub-sequence(s) done" if view.state == "running" else ""
            self._say(f"{view.state}: {len(view.positions_px)} positions scanned{done}")
            if view.state not in ("running", "finishing"):
                return

    def _show(self, view) -> None:
        """On the UI thread: the reconstruction as one data item, the positions as points."""
        calibration = Calibration.Calibration(scale=view.pixel_A / 10.0, units="nm")
        xdata = DataAndMetadata.new_data_and_metadata(
            view.image, dimensional_calibrations=[calibration, calibration],
            intensity_calibration=Calibration.Calibration(units="rad"))
        document_model = self.document_controller.document_model
        if self.data_item is None or self.data_item not in document_model.data_items:
            self.data_item = DataItem.new_data_item(xdata)
            self.data_item.title = "ptypilot reconstruction"
            document_model.append_data_item(self.data_item)
        else:
            self.data_item.set_xdata(xdata)
        display_item = document_model.get_display_item_for_data_item(self.data_item)
        if display_item is None:
            return
        for graphic in list(display_item.graphics):
            display_item.remove_graphic(graphic).close()
        for fy, fx in view.positions_fraction[-MAX_POINT_GRAPHICS:]:
            point = Graphics.PointGraphic()
            point.position = (float(fy), float(fx))
            display_item.add_graphic(point)

    def close(self) -> None:
        self._stop_polling.set()
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        super().close()


Workspace.WorkspaceManager().register_panel(PtypilotPanel, "ptypilot-bridge-panel", _("ptypilot"),
                                            ["left", "right"], "right", {"min-width": 320})
