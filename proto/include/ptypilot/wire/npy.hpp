// NumPy .npy files (format 1.0 written; 1.0, 2.0 and 3.0 read): float32 arrays written for
// numpy.load, and the header of any file parsed so that its data can be read in place (a
// recorded data set of many GB is memory-mapped, not loaded).
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace ptypilot {

// Throws std::runtime_error naming the path when the file cannot be written.
void write_npy(const std::filesystem::path& path, std::span<const float> data,
               const std::vector<std::size_t>& shape);

// What an .npy header says about the array that follows it.
struct NpyHeader {
  std::string descr;      // as written, e.g. "<u2"
  char byte_order = '<';  // '<' little, '>' big, '|' not applicable (one byte)
  char kind = 'u';        // 'u' unsigned, 'i' signed, 'f' floating point, 'b' boolean
  std::size_t item_bytes = 0;
  bool fortran_order = false;
  std::vector<std::size_t> shape;
  std::size_t data_offset = 0;  // bytes from the start of the file to the first element

  std::size_t element_count() const;
  std::size_t data_bytes() const { return element_count() * item_bytes; }
};

// Parses the header at the start of `bytes`, the content of `path` (named in errors only).
// Throws std::runtime_error "<path>: <what> at offset <n>" for a header that is not an .npy
// header, is cut short, or describes a dtype other than a plain number (structured, string,
// complex and object dtypes are refused). Does not check that the data is all there; compare
// data_offset + data_bytes() with the file size for that.
NpyHeader parse_npy_header(std::span<const std::byte> bytes, const std::filesystem::path& path);

// A 2-D array (rows, cols) of a plain number type (u1/u2/u4, i1/i2/i4, f4/f8, b1, either byte
// order, C order) as floats, for small per-pixel maps: a detector mask, a flat-field. Throws
// std::runtime_error naming the path for anything else.
std::vector<float> read_npy_image(const std::filesystem::path& path, std::size_t* rows,
                                  std::size_t* cols);

}  // namespace ptypilot
