// DECTRIS images, v1 or v2, as parsed (dectris_parse.hpp): decode_image, which decompresses them
// through compression.hpp and widens them into a DetectorFrame.
#include "ptypilot/wire/dectris_parse.hpp"

#include <bit>
#include <vector>

#include "dectris_parse_internal.hpp"
#include "ptypilot/wire/compression.hpp"

namespace ptypilot::dectris {

static_assert(std::endian::native == std::endian::little,
              "DECTRIS pixels are little-endian and are read with memcpy here");

using detail::fail;

Status decode_image(const Image& image, int expected_rows, int expected_cols,
                    std::optional<PixelType> expected_dtype, DetectorFrame* frame,
                    std::string_view* counter) {
  const std::string which = "frame " + std::to_string(image.frame_id) + " of series " +
                            std::to_string(image.series_id) + ": ";
  if ((expected_rows != 0 && image.rows != expected_rows) ||
      (expected_cols != 0 && image.cols != expected_cols))
    return fail(counter, counters::kFramesWrongShape,
                which + "its shape is " + std::to_string(image.rows) + " x " +
                    std::to_string(image.cols) + " but the detector is configured as " +
                    std::to_string(expected_rows) + " x " + std::to_string(expected_cols));
  if (expected_dtype && image.dtype != *expected_dtype)
    return fail(counter, counters::kFramesDtypeMismatch,
                which + "its type is " + to_string(image.dtype) +
                    " but the detector is configured to send " + to_string(*expected_dtype) +
                    " (detector.dtype)");
  const std::size_t n = static_cast<std::size_t>(image.rows) * static_cast<std::size_t>(image.cols);
  const std::size_t element = pixel_size(image.dtype);
  const std::size_t bytes = n * element;

  std::span<const std::byte> raw = image.data;
  if (image.encoding == Encoding::kNone) {
    if (raw.size() != bytes)
      return fail(counter, counters::kDectrisSizeMismatch,
                  which + "its uncompressed data is " + std::to_string(raw.size()) +
                      " bytes, but " + std::to_string(image.rows) + " x " +
                      std::to_string(image.cols) + " " + to_string(image.dtype) + " need " +
                      std::to_string(bytes));
  } else {
    // LZ4 expands at most about 255-fold, so a blob too short for the image is a lie that is
    // refused before a buffer of the image's size is even touched.
    if (bytes / 255 > image.data.size() + 16)
      return fail(counter, counters::kDectrisSizeMismatch,
                  which + "its " + std::to_string(image.data.size()) +
                      " compressed bytes cannot hold " + std::to_string(image.rows) + " x " +
                      std::to_string(image.cols) + " " + to_string(image.dtype) + " pixels");
    if (image.hdf5_framing) {
      compression::Hdf5FramingHeader header;
      Status s = compression::read_hdf5_framing_header(image.data, &header);
      if (!s.ok()) return fail(counter, counters::kDectrisCorruptData, which + s.message());
      if (header.decoded_bytes != bytes)
        return fail(counter, counters::kDectrisSizeMismatch,
                    which + "its compressed data says it decodes to " +
                        std::to_string(header.decoded_bytes) + " bytes, but " +
                        std::to_string(image.rows) + " x " + std::to_string(image.cols) + " " +
                        to_string(image.dtype) + " need " + std::to_string(bytes));
    }
    thread_local std::vector<std::byte> decoded;
    decoded.resize(bytes);
    Status s;
    if (image.encoding == Encoding::kBitshuffleLz4)
      s = compression::decode_bitshuffle_lz4(image.data, element, decoded);
    else if (image.hdf5_framing)
      s = compression::decode_lz4_hdf5(image.data, decoded);
    else
      s = compression::decode_lz4(image.data, decoded);
    if (!s.ok()) return fail(counter, counters::kDectrisCorruptData, which + s.message());
    raw = decoded;
  }

  frame->counts.resize(n);
  float* out = frame->counts.data();
  const PixelDefects defects = widen_pixels(image.dtype, raw.data(), out, n);
  if (defects.non_finite != 0)
    return fail(counter, counters::kFramesNonFinite,
                which + std::to_string(defects.non_finite) + " of " + std::to_string(n) +
                    " pixels are NaN or infinite (first: pixel " +
                    std::to_string(defects.first_non_finite) + ")");
  if (defects.negative != 0)
    return fail(counter, counters::kFramesNegative,
                which + std::to_string(defects.negative) + " of " + std::to_string(n) +
                    " pixels are negative (first: pixel " + std::to_string(defects.first_negative) +
                    ")");
  if (image.encoding == Encoding::kBitshuffleLz4)
    frame->bitshuffle_lz4.assign(image.data.begin(), image.data.end());
  else
    frame->bitshuffle_lz4.clear();
  frame->rows = image.rows;
  frame->cols = image.cols;
  frame->dtype = image.dtype;
  frame->exposure_s = image.exposure_s;
  return Status::Ok();
}

}  // namespace ptypilot::dectris
