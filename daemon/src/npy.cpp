#include "ptypilot/daemon/npy.hpp"

#include <fstream>
#include <stdexcept>
#include <string>

namespace ptypilot {

void write_npy(const std::filesystem::path& path, std::span<const float> data,
               const std::vector<std::size_t>& shape) {
  std::size_t count = 1;
  std::string dims;
  for (std::size_t d : shape) {
    count *= d;
    dims += std::to_string(d) + ", ";
  }
  if (count != data.size()) throw std::invalid_argument("write_npy: shape does not match the data");
  if (shape.size() > 1) dims.erase(dims.size() - 2);  // (a, b) but (a,) for one dimension
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64.
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + path.string());
  out.write("\x93NUMPY\x01\x00", 8);
  const auto len = static_cast<std::uint16_t>(header.size());
  const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(len_bytes, 2);
  out << header;
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size_bytes()));
  if (!out) throw std::runtime_error("write failed: " + path.string());
}

}  // namespace ptypilot
