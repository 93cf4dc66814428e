"""Run by test_nion_bridge.py in .venv-nion, beside a `ptypilot serve` the test started
(PTYPILOT_SERVE_CONTROL): the Swift panel on Swift's headless test UI, on usim, does what an
operator does (connect, pick the config and policy, Start) and shows the reconstruction as a data
item, updated each sub-sequence, with the positions as points. Prints a JSON line, then OK."""

import json
import os
import pathlib
import sys
import time
import traceback

from nion.swift.test import TestContext

from ptypilot_bridge.nion import UsimHeadless

usim = UsimHeadless(pathlib.Path("nion"))
from nionswift_plugin.ptypilot_bridge_ui import PtypilotPanel  # noqa: E402

setup = TestContext.TestSetup()


def run(context):
    document_controller = context.create_document_controller()
    panel = PtypilotPanel(document_controller, "ptypilot-bridge-panel", {})
    panel.serve_edit.text = os.environ["PTYPILOT_SERVE_CONTROL"]
    panel.command_edit.text = panel.data_edit.text = "tcp://127.0.0.1:*"
    panel.raster_edit.text = "32,32,0.3"
    panel.config_combo.current_item = "nion.json"
    panel.policy_combo.current_item = "random"
    shown = []  # each update of the data item
    show = panel._show
    panel._show = lambda view: (shown.append(view.image.copy()), show(view))
    panel.binning_edit.text = "8"
    panel._connect()
    panel._start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        document_controller.periodic()  # runs the panel's queued UI tasks
        if panel.model.state() == "idle" and len(shown) >= 2:
            time.sleep(0.8)
            document_controller.periodic()
            break
        time.sleep(0.05)
    items = document_controller.document_model.data_items
    assert len(items) == 1, items
    display_item = document_controller.document_model.get_display_item_for_data_item(items[0])
    points = len(display_item.graphics)
    status = panel.status_label.text
    print(json.dumps({"updates": len(shown), "points": points, "image": list(items[0].data.shape),
                      "status": status, "bridge": panel.bridge.summary()}))
    assert points == 100, points
    assert len(shown) == 2, len(shown)  # once per sub-sequence
    assert not (shown[0] == shown[1]).all()
    assert (items[0].data == shown[1]).all()
    assert not status.startswith(("start failed", "connect failed")), status
    panel.close()


try:
    with TestContext.create_memory_context() as context:
        run(context)
    usim.close()
except BaseException:
    traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)  # Nion's threads would keep the process alive
print("OK")
sys.stdout.flush()
os._exit(0)
