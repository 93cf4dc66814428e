// Python face of the image-quality metrics (ptypilot/metrics.hpp), so that the training and
// evaluation scripts score reconstructions with exactly the daemon's SSIM, FRC and Q_SSIM.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "numpy_convert.hpp"
#include "ptypilot/metrics.hpp"

namespace py = pybind11;

namespace {

py::array_t<double> to_array(const std::vector<double>& values) {
  return py::array_t<double>(static_cast<py::ssize_t>(values.size()), values.data());
}

// numpy's canonical int64, independent of the platform's width of long.
py::array_t<std::int64_t> to_array(const std::vector<long>& values) {
  py::array_t<std::int64_t> array(static_cast<py::ssize_t>(values.size()));
  auto out = array.mutable_unchecked<1>();
  for (py::ssize_t i = 0; i < out.shape(0); ++i) out(i) = values[static_cast<std::size_t>(i)];
  return array;
}

}  // namespace

void bind_metrics(py::module_& m) {
  using ptypilot::bindings::FloatArray;
  using ptypilot::bindings::to_real_image;

  m.def(
      "ssim",
      [](const FloatArray& a, const FloatArray& b, double data_range) {
        const ptypilot::RealImage image_a = to_real_image(a, "a");
        const ptypilot::RealImage image_b = to_real_image(b, "b");
        // Large reconstructions take a while; let other Python threads run meanwhile.
        py::gil_scoped_release release;
        return ptypilot::ssim(image_a, image_b, data_range);
      },
      py::arg("a"), py::arg("b"), py::arg("data_range"),
      "Mean structural similarity of two 2-D images, equal to skimage's\n"
      "structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,\n"
      "use_sample_covariance=False). Inputs are converted to float32; evaluation is in double.\n"
      "Raises ValueError for non-2-D or mismatched inputs, images smaller than 11x11,\n"
      "NaN/inf values or a non-positive data_range.");

  m.def(
      "ssim_map",
      [](const FloatArray& a, const FloatArray& b, double data_range) {
        const ptypilot::RealImage image_a = to_real_image(a, "a");
        const ptypilot::RealImage image_b = to_real_image(b, "b");
        ptypilot::Image<double> map;
        {
          py::gil_scoped_release release;
          map = ptypilot::ssim_map(image_a, image_b, data_range);
        }
        return ptypilot::bindings::to_numpy(map);
      },
      py::arg("a"), py::arg("b"), py::arg("data_range"),
      "The local SSIM that ssim() averages: a float64 (rows - 10, cols - 10) array whose\n"
      "element (i, j) belongs to image pixel (i + 5, j + 5) (SSIM_BORDER_PX), i.e. skimage's\n"
      "full=True map without the border skimage leaves out of the mean.");
  m.attr("SSIM_BORDER_PX") = ptypilot::kSsimBorderPx;

  m.def(
      "frc",
      [](const FloatArray& a, const FloatArray& b, double pixel_A) {
        const ptypilot::RealImage image_a = to_real_image(a, "a");
        const ptypilot::RealImage image_b = to_real_image(b, "b");
        ptypilot::FrcCurve curve;
        {
          py::gil_scoped_release release;
          curve = ptypilot::frc(image_a, image_b, pixel_A);
        }
        py::dict result;
        result["spatial_frequency_per_A"] = to_array(curve.spatial_frequency_per_A);
        result["correlation"] = to_array(curve.correlation);
        result["half_bit_threshold"] = to_array(curve.half_bit_threshold);
        result["pixels_in_ring"] = to_array(curve.pixels_in_ring);
        result["resolution_A"] = curve.resolution_A;
        return result;
      },
      py::arg("a"), py::arg("b"), py::arg("pixel_A"),
      "Fourier ring correlation of two square 2-D images with pixel size pixel_A (Angstrom).\n"
      "Rings are round(|k|) in frequency pixels, 0..N/2; no mean subtraction or windowing.\n"
      "Returns a dict: spatial_frequency_per_A, correlation, half_bit_threshold (float64\n"
      "arrays), pixels_in_ring (int64 array) and resolution_A (float: 1/frequency where the\n"
      "FRC first drops below the half-bit threshold, or 2*pixel_A if it never does).");

  m.def("q_ssim", &ptypilot::q_ssim, py::arg("ssim_adaptive"), py::arg("ssim_sparse"),
        "Relative SSIM gain (ssim_adaptive - ssim_sparse) / ssim_sparse. Raises ValueError\n"
        "if ssim_sparse is zero or a value is not finite.");
}
