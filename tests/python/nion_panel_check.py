"""Run by test_nion_bridge.py in .venv-nion: the Swift plug-in's panel, built on Swift's
headless test UI (nion.swift.test.TestContext, no Qt), shows a model view as a data item with
the positions as point graphics, and replaces it on the next sub-sequence. Prints OK."""

import numpy as np

from nion.swift.test import TestContext

from nionswift_plugin.ptypilot_bridge_ui import PtypilotPanel
from ptypilot_bridge.panel_model import View

setup = TestContext.TestSetup()  # Swift's Application on the test UI: registers the workspace's panels
with TestContext.create_memory_context() as context:
    document_controller = context.create_document_controller()
    panel = PtypilotPanel(document_controller, "ptypilot-bridge-panel", {})
    assert "sparse-grid" in [panel.policy_combo.items[i] for i in range(len(panel.policy_combo.items))]
    image = np.arange(24, dtype=np.float32).reshape(4, 6)
    positions = np.array([[0.5, 0.5], [1.5, 2.5]])
    for sub in range(2):
        view = View("running", image + sub, 0.5, sub, positions[: sub + 1],
                    (positions[: sub + 1] + 0.5) / [4, 6], True)
        panel._show(view)
    document_model = document_controller.document_model
    assert len(document_model.data_items) == 1, len(document_model.data_items)
    data_item = document_model.data_items[0]
    assert data_item.title == "ptypilot reconstruction"
    np.testing.assert_array_equal(data_item.data, image + 1)
    display_item = document_model.get_display_item_for_data_item(data_item)
    points = [g.position for g in display_item.graphics]
    assert len(points) == 2 and np.allclose(points[1], (2.0 / 4, 3.0 / 6)), points
    panel.close()
    print("OK")
