// Conversions between 2-D numpy arrays and ptypilot images, shared by the bind_*.cpp files.
//
// Arguments are declared as FloatArray / Complex64Array so that pybind11 casts any numeric
// array (float64, int, non-contiguous views, nested lists) into a C-contiguous copy of the right
// dtype before it reaches C++; only the dimensionality is left to check here. Errors are thrown
// as std::invalid_argument, which pybind11 turns into ValueError.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <complex>
#include <cstddef>
#include <cstring>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ptypilot/image.hpp"

namespace ptypilot::bindings {

namespace py = pybind11;

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using Complex64Array = py::array_t<std::complex<float>, py::array::c_style | py::array::forcecast>;
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

namespace detail {

// Image stores its shape as int, so larger numpy extents are rejected rather than truncated.
inline void check_2d(const py::array& array, const char* name) {
  if (array.ndim() != 2) {
    throw std::invalid_argument(std::string(name) + " must be a 2-D array, got " +
                                std::to_string(array.ndim()) + "-D");
  }
  for (int axis = 0; axis < 2; ++axis) {
    if (array.shape(axis) > std::numeric_limits<int>::max()) {
      throw std::invalid_argument(std::string(name) + " is too large");
    }
  }
}

template <typename T, typename Array>
Image<T> to_image(const Array& array, const char* name) {
  check_2d(array, name);
  const int rows = static_cast<int>(array.shape(0));
  const int cols = static_cast<int>(array.shape(1));
  // c_style guarantees a dense row-major buffer, so a flat copy preserves the layout.
  std::vector<T> data(array.data(), array.data() + array.size());
  return Image<T>(rows, cols, std::move(data));
}

template <typename T>
py::array_t<T> to_array(const Image<T>& image) {
  py::array_t<T> array(
      {static_cast<py::ssize_t>(image.rows()), static_cast<py::ssize_t>(image.cols())});
  if (image.size() > 0) std::memcpy(array.mutable_data(), image.data(), image.size() * sizeof(T));
  return array;
}

}  // namespace detail

// Copies a 2-D float array into a RealImage; `name` labels the argument in error messages.
inline RealImage to_real_image(const FloatArray& array, const char* name = "array") {
  return detail::to_image<float>(array, name);
}

// Copies a 2-D complex64 array into a ComplexImage.
inline ComplexImage to_complex_image(const Complex64Array& array, const char* name = "array") {
  return detail::to_image<std::complex<float>>(array, name);
}

// Copies an image into a new (rows, cols) float32 array owned by Python.
inline py::array_t<float> to_numpy(const RealImage& image) { return detail::to_array(image); }

// Copies an image into a new (rows, cols) float64 array owned by Python.
inline py::array_t<double> to_numpy(const Image<double>& image) { return detail::to_array(image); }

// Copies an image into a new (rows, cols) complex64 array owned by Python.
inline py::array_t<std::complex<float>> to_numpy(const ComplexImage& image) {
  return detail::to_array(image);
}

// Copies positions into a new (n, 2) float64 array of [y, x] rows, in Angstrom.
inline py::array_t<double> positions_to_numpy(std::span<const Vec2> positions) {
  py::array_t<double> out({static_cast<py::ssize_t>(positions.size()), py::ssize_t{2}});
  auto view = out.mutable_unchecked<2>();
  for (std::size_t i = 0; i < positions.size(); ++i) {
    view(i, 0) = positions[i].y;
    view(i, 1) = positions[i].x;
  }
  return out;
}

// Copies an (n, 2) array of [y, x] rows, in Angstrom, into positions.
inline std::vector<Vec2> positions_from_numpy(const DoubleArray& positions) {
  if (positions.ndim() != 2 || positions.shape(1) != 2)
    throw std::invalid_argument("positions must be an (n, 2) array of (y_A, x_A)");
  std::vector<Vec2> out(static_cast<std::size_t>(positions.shape(0)));
  auto view = positions.unchecked<2>();
  for (py::ssize_t i = 0; i < positions.shape(0); ++i) out[i] = {view(i, 0), view(i, 1)};
  return out;
}

}  // namespace ptypilot::bindings
