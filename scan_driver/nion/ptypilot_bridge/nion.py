"""The bridge's microscope on Nion Swift's instrumentation API (nionswift-instrumentation 23.6,
pinned in deploy/nion-requirements.txt): a scan hardware source to park the probe and a camera
hardware source to take one frame per position. Inside Swift the hardware sources are the ones
Swift registered; in a plain process `UsimHeadless` registers Nion's simulated microscope
(nionswift-usim) without any UI.

Per position (the software path): park the probe (ScanHardwareSource.probe_position, fractions
of the scan context), then CameraHardwareSource.acquire_sequence(1): a direct, synchronous
acquisition that starts after the call, so the frame cannot predate the move. Measured against
get_next_xdatas_to_start on a playing camera (which waits out the frame in flight, then a whole
new one) it was faster on usim in every setting measured (README, "Nion Swift bridge").
"""

from __future__ import annotations

import copy
import pathlib
import typing

import numpy as np

from .mapping import Grid, RasterMapping, subscan_of


class NionMicroscope:
    METHODS = ("sequence", "next-frame")

    def __init__(self, scan_hardware_source, camera_hardware_source, camera_binning: int | None = None,
                 min_exposure_s: float = 1e-4, method: str = "sequence"):
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        self.method = method
        self.scan = scan_hardware_source
        self.camera = camera_hardware_source
        self.camera_binning = camera_binning
        self.min_exposure_s = min_exposure_s
        self._context: tuple | None = None
        self._exposure_s: float | None = None
        self._operator_scan = None    # the scan's and camera's frame parameters before the
        self._operator_camera = None  # bridge changed them, given back by close()

    @staticmethod
    def _geometry():
        from nion.utils import Geometry
        return Geometry

    def prepare(self, mapping: RasterMapping, exposure_s: float) -> None:
        Geometry = self._geometry()
        if self.scan.is_playing:  # the probe must be parked, not scanning
            self.scan.stop_playing(sync_timeout=10.0)
        if self.method == "sequence" and self.camera.is_playing:
            self.camera.stop_playing(sync_timeout=10.0)  # a sequence needs the camera to itself
        wanted = (mapping.scan_pixel_size, mapping.fov_nm)
        if self._operator_scan is None:
            self._operator_scan = copy.deepcopy(self.scan.get_current_frame_parameters())
            self._operator_camera = copy.deepcopy(self.camera.get_current_frame_parameters())
        if self._context != wanted:
            fp = copy.deepcopy(self.scan.get_current_frame_parameters())
            fp.pixel_size = Geometry.IntSize(*mapping.scan_pixel_size)
            fp.fov_nm = mapping.fov_nm
            # Setting the scan's frame parameters updates the STEM controller's scan context,
            # the field the probe position is a fraction of.
            self.scan.set_current_frame_parameters(fp)
            self._context = wanted
        exposure_s = max(exposure_s, self.min_exposure_s)
        if self._exposure_s != exposure_s:
            cfp = copy.deepcopy(self.camera.get_current_frame_parameters())
            cfp.exposure_ms = exposure_s * 1e3
            if self.camera_binning:
                cfp.binning = self.camera_binning
            self.camera.set_current_frame_parameters(cfp)
            self._exposure_s = exposure_s
        if self.method == "next-frame" and not self.camera.is_playing:
            self.camera.start_playing(sync_timeout=10.0)

    def visit(self, fy: float, fx: float) -> tuple[np.ndarray, tuple[float, float]]:
        Geometry = self._geometry()
        self.scan.probe_position = Geometry.FloatPoint(y=fy, x=fx)
        reported = self.scan.probe_position
        if self.method == "next-frame":
            xdatas = self.camera.get_next_xdatas_to_start(10.0)
            if not xdatas or xdatas[0] is None:
                raise RuntimeError("the camera returned no frame")
            data = np.asarray(xdatas[0].data)
        else:
            elements = self.camera.acquire_sequence(1)
            if not elements:
                raise RuntimeError("the camera returned no frame")
            data = np.asarray(elements[0]["data"])
        return data.reshape(data.shape[-2:]), (reported.y, reported.x)

    def raster(self, mapping: RasterMapping, grid: Grid) -> np.ndarray:
        """The grid as Nion's own synchronised scan (ScanHardwareSource.grab_synchronized): a
        subscan of grid.ny x grid.nx pixels whose centres are the grid's positions (subscan_of),
        one camera frame per pixel, in raster order. Returns the frames, (ny * nx, h, w)."""
        import uuid
        Geometry = self._geometry()
        if self.camera.is_playing:
            self.camera.stop_playing(sync_timeout=10.0)
        (cy, cx), (sy, sx) = subscan_of(mapping, grid)
        sfp = copy.deepcopy(self.scan.get_current_frame_parameters())
        sfp.pixel_size = Geometry.IntSize(*mapping.scan_pixel_size)
        sfp.fov_nm = mapping.fov_nm
        sfp.subscan_pixel_size = Geometry.IntSize(grid.ny, grid.nx)
        sfp.subscan_fractional_size = Geometry.FloatSize(sy, sx)
        sfp.subscan_fractional_center = Geometry.FloatPoint(y=cy, x=cx)
        sfp.subscan_rotation = 0.0
        sfp.scan_id = uuid.uuid4()
        cfp = self.camera.get_current_frame_parameters()
        result = self.scan.grab_synchronized(scan_frame_parameters=sfp, camera=self.camera,
                                             camera_frame_parameters=cfp)
        if not result or not result[1] or result[1][0] is None:
            raise RuntimeError("the synchronised scan returned no camera data")
        data = np.asarray(result[1][0].data)
        if data.shape[:2] != (grid.ny, grid.nx):
            raise RuntimeError(f"the synchronised scan returned {data.shape[:2]} frames, "
                               f"not the grid's {(grid.ny, grid.nx)}")
        return data.reshape((grid.ny * grid.nx,) + data.shape[2:])

    def finish(self) -> None:
        pass

    def close(self) -> None:
        """Stops the camera the bridge played and gives the operator's scan field and camera
        settings back."""
        if self.camera.is_playing:
            self.camera.stop_playing(sync_timeout=10.0)
        if self._operator_scan is not None:
            self.scan.set_current_frame_parameters(self._operator_scan)
            self.camera.set_current_frame_parameters(self._operator_camera)
            self._operator_scan = self._operator_camera = None
            self._context = self._exposure_s = None

    def scan_context(self) -> dict:
        sc = self.scan.scan_context if hasattr(self.scan, "scan_context") else None
        if sc is None:
            return {}
        return {"size": tuple(sc.size), "fov_nm": sc.fov_nm,
                "fov_size_nm": tuple(sc.fov_size_nm) if sc.fov_size_nm else None}


class UsimHeadless:
    """Nion's simulated microscope without Swift's UI: the hardware-source manager, the camera
    and scan factories and usim's devices, as nion.instrumentation.test's AcquisitionTestContext
    sets them up, minus the document controller."""

    def __init__(self, configuration_location: pathlib.Path):
        from nion.instrumentation import HardwareSource, camera_base, scan_base
        from nion.usim_device import DeviceConfiguration
        configuration_location = pathlib.Path(configuration_location)
        configuration_location.mkdir(parents=True, exist_ok=True)
        HardwareSource.run()
        camera_base.run(configuration_location)
        scan_base.run(configuration_location)
        self._modules = (HardwareSource, camera_base, scan_base)
        self.configuration = DeviceConfiguration.AcquisitionContextConfiguration(
            set_configuration_location=False)
        self.configuration.run()
        manager = HardwareSource.HardwareSourceManager()
        self.scan = manager.get_hardware_source_for_hardware_source_id(
            self.configuration.scan_module.device.scan_device_id)
        self.camera = manager.get_hardware_source_for_hardware_source_id(
            self.configuration.ronchigram_camera_device_id)
        self.instrument = self.configuration.instrument

    def microscope(self, camera_binning: int | None = None, method: str = "sequence") -> NionMicroscope:
        return NionMicroscope(self.scan, self.camera, camera_binning, method=method)

    def close(self) -> None:
        HardwareSource, camera_base, scan_base = self._modules
        self.configuration.stop()
        scan_base.stop()
        camera_base.stop()
        HardwareSource.stop()
