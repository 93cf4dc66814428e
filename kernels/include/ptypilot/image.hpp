// A dense row-major 2-D array. Used for potentials, probes and diffraction patterns alike.
#pragma once

#include <complex>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <vector>

namespace ptypilot {

template <typename T>
class Image {
 public:
  Image() = default;
  Image(int rows, int cols, T fill = T{}) : rows_(rows), cols_(cols) {
    if (rows < 0 || cols < 0) throw std::invalid_argument("Image: negative shape");
    data_.assign(static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols), fill);
  }
  Image(int rows, int cols, std::vector<T> data) : rows_(rows), cols_(cols), data_(std::move(data)) {
    if (data_.size() != static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols))
      throw std::invalid_argument("Image: data size does not match shape");
  }

  int rows() const { return rows_; }
  int cols() const { return cols_; }
  std::size_t size() const { return data_.size(); }
  bool empty() const { return data_.empty(); }

  T& operator()(int r, int c) { return data_[static_cast<std::size_t>(r) * cols_ + c]; }
  const T& operator()(int r, int c) const { return data_[static_cast<std::size_t>(r) * cols_ + c]; }

  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  std::span<T> span() { return data_; }
  std::span<const T> span() const { return data_; }
  std::vector<T>& vector() { return data_; }
  const std::vector<T>& vector() const { return data_; }

 private:
  int rows_ = 0;
  int cols_ = 0;
  std::vector<T> data_;
};

using RealImage = Image<float>;
using ComplexImage = Image<std::complex<float>>;

struct Vec2 {
  double y = 0.0;
  double x = 0.0;
};

}  // namespace ptypilot
