// The DECTRIS SIMPLON stream formats and what both ends share: the protocol, the encodings and
// their names on the wire. The ends are separate: dectris_parse.hpp reads the formats (the
// daemon's DectrisStreamSource and its fuzz targets: untrusted input), dectris_build.hpp writes
// them (the simulated detector, the benchmarks), and the reader needs nothing of the writer. No
// sockets here: a v1 message is the list of its ZMQ parts, a v2 message its one CBOR buffer.
//
// Stream v1 ("legacy", ZMQ PUSH, multipart JSON + binary), one ZMQ message each:
//   series header:  [{"htype":"dheader-1.0","series":S,"header_detail":"basic"|"all"|"none"},
//                    detector config (JSON object; basic and all),
//                    with all: {"htype":"dflatfield-1.0",...}, blob, {"htype":"dpixelmask-1.0",...},
//                    blob, {"htype":"dcountrate_table-1.0",...}, blob]  (+ an optional appendix)
//   image:          [{"htype":"dimage-1.0","series":S,"frame":K,"hash":MD5 of the blob},
//                    {"htype":"dimage_d-1.0","shape":[X,Y],"type":T,"encoding":E,"size":BYTES},
//                    blob,
//                    {"htype":"dconfig-1.0","start_time":NS,"stop_time":NS,"real_time":NS}]
//                   (+ an optional appendix). shape is [width, height]; T is uint8, uint16,
//                   uint32 (or float32); E is "<" (uncompressed), "lz4<" (one raw LZ4 block) or
//                   "bs8-lz4<", "bs16-lz4<", "bs32-lz4<" (bitshuffle + LZ4, HDF5 framing).
//   series end:     [{"htype":"dseries_end-1.0","series":S}]
// Stream v2 (ZMQ PUSH, one CBOR message each, self-described with tag 55799): a map whose "type"
//   is "start" (series_id, image_size_x/y, number_of_images, ...), "image" (series_id,
//   image_id, real_time [num, den], data: {channel: tag 40 [[rows, cols], typed array]}) or
//   "end" (series_id). A typed array is tag 64 (uint8), 69 (uint16 LE), 70 (uint32 LE) or 85
//   (float32 LE) on a byte string, or on tag 56500 ["bslz4", element size, bytes] or
//   ["lz4", 0, bytes], both in the HDF5 framing of compression.hpp.
// Frame numbers (v1 "frame", v2 "image_id") count from 0 within a series.
#pragma once

#include <string>

#include "ptypilot/wire/frame.hpp"

namespace ptypilot::dectris {

enum class Protocol { kV1, kV2 };
enum class Encoding { kNone, kLz4, kBitshuffleLz4 };

// The name on the wire: v1 "<", "lz4<", "bs16-lz4<"; v2 "none", "lz4", "bslz4".
std::string encoding_name(Protocol protocol, Encoding encoding, PixelType dtype);

}  // namespace ptypilot::dectris
