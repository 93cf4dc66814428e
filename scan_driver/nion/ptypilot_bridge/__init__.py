"""ptypilot_bridge: ptypilot's scan generator and detector for a Nion microscope, driven through
Nion Swift's instrumentation API. README, "Nion Swift bridge"."""

from .mapping import RasterMapping
from .window import FrameWindow

__all__ = ["RasterMapping", "FrameWindow"]
