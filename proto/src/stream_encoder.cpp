#include "ptypilot/wire/stream_encoder.hpp"

#include <optional>
#include <stdexcept>

#include "ptypilot.pb.h"
#include "ptypilot/wire/native_frame.hpp"
#include "ptypilot/wire/dectris_build.hpp"
#include "ptypilot/wire/merlin.hpp"

namespace ptypilot {
namespace {

using Clock = std::chrono::steady_clock;

zmq::message_t to_message(std::span<const std::byte> bytes) {
  return zmq::message_t(bytes.data(), bytes.size());
}

class NativeEmitter final : public FrameEmitter {
 public:
  bool uses_series() const override { return false; }
  std::vector<WireMessage> begin_series(const StreamSeries&) override { return {}; }
  std::vector<WireMessage> end_series() override { return {}; }

  Status encode(const OutgoingFrame& f, WireMessage* message) override {
    const std::vector<std::byte> payload = encode_payload(f.counts, f.dtype);
    header_.set_session_id(std::string(f.session_id));
    header_.set_sub_sequence(f.sub_sequence);
    header_.set_frame_index(f.frame_index);
    header_.set_position_index(f.position_index);
    header_.set_y_a(f.position_A.y);
    header_.set_x_a(f.position_A.x);
    header_.set_rows(static_cast<std::uint32_t>(f.rows));
    header_.set_cols(static_cast<std::uint32_t>(f.cols));
    header_.set_dtype(wire_dtype(f.dtype));
    header_.set_electrons_per_frame(f.electrons_per_frame);
    header_.set_exposure_s(f.exposure_s);
    header_.set_timestamp_ns(f.timestamp_ns);
    header_.set_payload_bytes(payload.size());
    if (f.replay_source_frame) {
      header_.set_replay_source_frame(*f.replay_source_frame);
      header_.set_replay_distance_a(f.replay_distance_A);
    } else {  // the header is reused from frame to frame
      header_.clear_replay_source_frame();
      header_.clear_replay_distance_a();
    }
    message->clear();
    zmq::message_t header_part(header_.ByteSizeLong());
    header_.SerializeWithCachedSizesToArray(static_cast<std::uint8_t*>(header_part.data()));
    message->push_back(std::move(header_part));
    message->push_back(to_message(payload));
    return Status::Ok();
  }

 private:
  wire::FrameHeader header_;
};

class DectrisEmitter final : public FrameEmitter {
 public:
  DectrisEmitter(dectris::Protocol protocol, const StreamFormat& format, PixelType dtype)
      : protocol_(protocol), format_(format), dtype_(dtype) {}

  bool uses_series() const override { return true; }

  std::vector<WireMessage> begin_series(const StreamSeries& s) override {
    series_.series_id = next_series_id_++;
    series_.number_of_images = s.number_of_images;
    series_.rows = s.rows;
    series_.cols = s.cols;
    series_.dtype = dtype_;
    series_.encoding = format_.encoding;
    series_.header_detail = format_.header_detail;
    series_.count_time_s = s.count_time_s;
    series_.incident_energy_eV = s.incident_energy_eV;
    open_ = true;
    started_ = Clock::now();
    std::vector<WireMessage> out(1);
    if (protocol_ == dectris::Protocol::kV1) {
      for (const auto& part : dectris::v1_series_header(series_)) out[0].push_back(to_message(part));
    } else {
      out[0].push_back(to_message(dectris::v2_start(series_)));
    }
    return out;
  }

  std::vector<WireMessage> end_series() override {
    if (!open_) return {};
    open_ = false;
    std::vector<WireMessage> out(1);
    if (protocol_ == dectris::Protocol::kV1) {
      for (const auto& part : dectris::v1_series_end(series_.series_id))
        out[0].push_back(to_message(part));
    } else {
      out[0].push_back(to_message(dectris::v2_end(series_.series_id)));
    }
    return out;
  }

  Status encode(const OutgoingFrame& f, WireMessage* message) override {
    if (!open_) return failed_precondition("a DECTRIS frame needs an open series (begin_series)");
    if (f.dtype != dtype_ || f.rows != series_.rows || f.cols != series_.cols)
      return invalid_argument("a frame of " + std::to_string(f.rows) + " x " +
                              std::to_string(f.cols) + " " + to_string(f.dtype) +
                              " in a series of " + std::to_string(series_.rows) + " x " +
                              std::to_string(series_.cols) + " " + to_string(dtype_));
    raw_ = encode_payload(f.counts, f.dtype);
    if (Status s = dectris::encode_pixels(protocol_, format_.encoding, f.dtype, raw_, &blob_); !s.ok())
      return s;
    const auto since_start = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started_);
    const std::uint64_t start_ns = static_cast<std::uint64_t>(since_start.count());
    const std::uint64_t stop_ns = start_ns + static_cast<std::uint64_t>(f.exposure_s * 1e9);
    message->clear();
    if (protocol_ == dectris::Protocol::kV1) {
      for (const auto& part : dectris::v1_image(series_, f.frame_index, blob_, start_ns, stop_ns))
        message->push_back(to_message(part));
    } else {
      message->push_back(to_message(dectris::v2_image(series_, f.frame_index, blob_, start_ns, stop_ns)));
    }
    return Status::Ok();
  }

 private:
  dectris::Protocol protocol_;
  StreamFormat format_;
  PixelType dtype_;
  dectris::SeriesInfo series_;
  std::uint64_t next_series_id_ = 1;
  bool open_ = false;
  Clock::time_point started_;
  std::vector<std::byte> raw_, blob_;
};

class MerlinEmitter final : public FrameEmitter {
 public:
  explicit MerlinEmitter(PixelType dtype) : dtype_(dtype) {}
  bool uses_series() const override { return true; }

  std::vector<WireMessage> begin_series(const StreamSeries& s) override {
    rows_ = s.rows;
    cols_ = s.cols;
    open_ = true;
    const int depth = dtype_ == PixelType::kUint8 ? 6 : dtype_ == PixelType::kUint32 ? 24 : 12;
    std::vector<WireMessage> out(1);
    out[0].push_back(to_message(merlin::acquisition_header_message(s.number_of_images, depth)));
    return out;
  }
  std::vector<WireMessage> end_series() override {  // the Merlin sends nothing at the end
    open_ = false;
    return {};
  }
  Status encode(const OutgoingFrame& f, WireMessage* message) override {
    if (!open_) return failed_precondition("a Merlin frame needs an acquisition (begin_series)");
    if (f.dtype != dtype_ || f.rows != rows_ || f.cols != cols_)
      return invalid_argument("a frame of " + std::to_string(f.rows) + " x " +
                              std::to_string(f.cols) + " " + to_string(f.dtype) +
                              " in an acquisition of " + std::to_string(rows_) + " x " +
                              std::to_string(cols_) + " " + to_string(dtype_));
    message->clear();
    message->push_back(
        to_message(merlin::frame_message(f.frame_index + 1, f.rows, f.cols, f.dtype,
                                         encode_payload(f.counts, f.dtype))));
    return Status::Ok();
  }

 private:
  PixelType dtype_;
  int rows_ = 0;
  int cols_ = 0;
  bool open_ = false;
};

}  // namespace

StreamProtocol parse_stream_protocol(std::string_view name) {
  if (name == "native") return StreamProtocol::kNative;
  if (name == "dectris-v1") return StreamProtocol::kDectrisV1;
  if (name == "dectris-v2") return StreamProtocol::kDectrisV2;
  if (name == "merlin") return StreamProtocol::kMerlin;
  throw std::invalid_argument("unknown protocol '" + std::string(name) +
                              "': use native, dectris-v1, dectris-v2 or merlin");
}

const char* to_string(StreamProtocol protocol) {
  switch (protocol) {
    case StreamProtocol::kNative: return "native";
    case StreamProtocol::kDectrisV1: return "dectris-v1";
    case StreamProtocol::kDectrisV2: return "dectris-v2";
    case StreamProtocol::kMerlin: return "merlin";
  }
  return "unknown";
}

void parse_stream_encoding(std::string_view name, StreamFormat* format) {
  format->bitshuffle_bits = 0;
  if (name == "none") format->encoding = dectris::Encoding::kNone;
  else if (name == "lz4") format->encoding = dectris::Encoding::kLz4;
  else if (name == "bs8-lz4" || name == "bs16-lz4" || name == "bs32-lz4") {
    format->encoding = dectris::Encoding::kBitshuffleLz4;
    format->bitshuffle_bits = name == "bs8-lz4" ? 8 : name == "bs16-lz4" ? 16 : 32;
  } else {
    throw std::invalid_argument("unknown encoding '" + std::string(name) +
                                "': use bs8-lz4, bs16-lz4, bs32-lz4, lz4 or none");
  }
}

std::string encoding_label(const StreamFormat& format) {
  switch (format.encoding) {
    case dectris::Encoding::kNone: return "none";
    case dectris::Encoding::kLz4: return "lz4";
    case dectris::Encoding::kBitshuffleLz4: return "bs" + std::to_string(format.bitshuffle_bits) + "-lz4";
  }
  return "unknown";
}

std::unique_ptr<FrameEmitter> make_frame_emitter(const StreamFormat& format, PixelType dtype) {
  if (format.protocol == StreamProtocol::kNative) return std::make_unique<NativeEmitter>();
  if (format.protocol == StreamProtocol::kMerlin) {
    if (dtype != PixelType::kUint8 && dtype != PixelType::kUint16 && dtype != PixelType::kUint32)
      throw std::invalid_argument("a Merlin sends uint8, uint16 or uint32 pixels (U08, U16, "
                                  "U32), not " + std::string(to_string(dtype)));
    return std::make_unique<MerlinEmitter>(dtype);
  }
  if (format.encoding == dectris::Encoding::kBitshuffleLz4 &&
      static_cast<std::size_t>(format.bitshuffle_bits) != 8 * pixel_size(dtype))
    throw std::invalid_argument("encoding " + encoding_label(format) + " shuffles " +
                                std::to_string(format.bitshuffle_bits) + "-bit pixels, but they are " +
                                to_string(dtype));
  if (format.header_detail != "basic" && format.header_detail != "all" &&
      format.header_detail != "none")
    throw std::invalid_argument("header detail '" + format.header_detail +
                                "': use basic, all or none");
  return std::make_unique<DectrisEmitter>(format.protocol == StreamProtocol::kDectrisV1
                                              ? dectris::Protocol::kV1
                                              : dectris::Protocol::kV2,
                                          format, dtype);
}

bool send_message(zmq::socket_t& socket, WireMessage& message, zmq::send_flags flags) {
  for (std::size_t i = 0; i < message.size(); ++i) {
    const bool last = i + 1 == message.size();
    // After the first part ZMQ takes the rest of the message whatever the high-water mark, so
    // only the first may be refused: a message is never half-sent.
    const zmq::send_flags f = (i == 0 ? flags : zmq::send_flags::none) |
                              (last ? zmq::send_flags::none : zmq::send_flags::sndmore);
    if (!socket.send(message[i], f)) return false;
  }
  return true;
}

}  // namespace ptypilot
