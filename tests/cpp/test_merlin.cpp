// The Merlin TCP protocol: its framing and headers parse back to what was built, each kind of
// bad input is refused under its own counter (and a message that arrives byte by byte, or is cut
// by the end of the connection, never crashes), and MerlinSource, against a TCP server written
// here, takes an acquisition header sent before the trigger, places frames by number and ends on
// an aborted acquisition. Also detector.kind merlin and `serve --detector merlin://`.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ptypilot/core/config.hpp"
#include "ptypilot/ingest/detector_connection.hpp"
#include "ptypilot/ingest/merlin_source.hpp"
#include "ptypilot/wire/counters.hpp"
#include "ptypilot/wire/merlin.hpp"
#include "ptypilot/wire/native_frame.hpp"

using namespace ptypilot;
using namespace std::chrono_literals;

namespace {

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string text_of(const std::vector<std::byte>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::vector<float> test_counts(std::size_t n, float top) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 37) % 200) * top / 200;
  return v;
}

// A listening TCP socket on a free loopback port; *port: the port.
int listen_on_loopback(int* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 4) == 0);
  socklen_t size = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size);
  *port = ntohs(a.sin_port);
  return fd;
}

// A Merlin data port: listens on a free loopback port and serves one client.
class FakeMerlin {
 public:
  FakeMerlin() {
    listener_ = listen_on_loopback(&port_);
  }
  ~FakeMerlin() {
    drop();
    ::close(listener_);
  }
  int port() const { return port_; }
  // Accepts the client that the source connects (the source connects when it first reads).
  void accept_from(MerlinSource& source) {
    for (int i = 0; i < 500 && client_ < 0; ++i) {
      DetectorFrame f;
      (void)source.receive(&f, 10ms);
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 10) == 1) client_ = ::accept(listener_, nullptr, nullptr);
    }
    REQUIRE(client_ >= 0);
  }
  // Accepts a client that is already connecting.
  void accept_from_link() {
    pollfd p{listener_, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 2000) == 1);
    client_ = ::accept(listener_, nullptr, nullptr);
    REQUIRE(client_ >= 0);
  }
  void send(const std::vector<std::byte>& b) { send(text_of(b)); }
  void send(const std::string& s) {
    REQUIRE(::send(client_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
  }
  void drop() {
    if (client_ >= 0) ::close(client_);
    client_ = -1;
  }

 private:
  int listener_ = -1;
  int client_ = -1;
  int port_ = 0;
};

// A Merlin control port on its own thread: answers each request with status `status` and
// remembers the requests' bodies.
class FakeControl {
 public:
  explicit FakeControl(int status = 0) : status_(status) {
    listener_ = listen_on_loopback(&port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeControl() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }
  int port() const { return port_; }
  std::vector<std::string> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  void serve() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 20) != 1) continue;
      const int fd = ::accept(listener_, nullptr, nullptr);
      std::string in;
      char chunk[512];
      // Answers every request of the connection until the client closes it (or 2 s pass).
      for (int i = 0; i < 100 && !stop_; ++i) {
        while (in.size() > merlin::kPrefixBytes &&
               in.size() >= merlin::kPrefixBytes + std::stoul(in.substr(4, 10))) {
          const std::size_t total = merlin::kPrefixBytes + std::stoul(in.substr(4, 10));
          const std::string body = in.substr(merlin::kPrefixBytes + 1, total - merlin::kPrefixBytes - 1);
          in.erase(0, total);
          {
            std::lock_guard lock(mutex_);
            requests_.push_back(body);
          }
          const std::vector<std::string> f = merlin::split_body(body);
          const std::string answer =
              merlin::control_message({f.at(0), f.size() > 1 ? f[1] : "", std::to_string(status_)});
          ::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
        }
        pollfd q{fd, POLLIN, 0};
        if (::poll(&q, 1, 20) != 1) continue;
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) break;
        in.append(chunk, static_cast<std::size_t>(n));
        i = 0;
      }
      {
        std::lock_guard lock(mutex_);
        ++connections_;
      }
      ::close(fd);
    }
  }
  int connections() {
    std::lock_guard lock(mutex_);
    return connections_;
  }

 private:
  int connections_ = 0;
  int status_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

MerlinSourceConfig source_config(int port, int side = 8) {
  MerlinSourceConfig c;
  c.host = "127.0.0.1";
  c.data_port = port;
  c.control_port = 0;
  c.expected_rows = c.expected_cols = side;
  c.expected_dtype = PixelType::kUint16;
  return c;
}

ScanRequest request(std::uint64_t first, std::size_t n, std::uint32_t sub = 0) {
  ScanRequest r;
  r.sub_sequence = sub;
  r.first_frame_index = first;
  for (std::size_t i = 0; i < n; ++i) r.positions_A.push_back({double(i), double(first + i)});
  return r;
}

std::vector<std::byte> frame(std::uint64_t number, float value, int side = 8,
                             PixelType type = PixelType::kUint16) {
  return merlin::frame_message(
      number, side, side, type,
      encode_payload(std::vector<float>(static_cast<std::size_t>(side * side), value), type));
}

// The next frame within `wait`; rejections and headers are skipped.
Status next_frame(MerlinSource& source, DetectorFrame* f, std::chrono::milliseconds wait = 2000ms) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  Status s;
  while (std::chrono::steady_clock::now() < deadline) {
    s = source.receive(f, 50ms);
    if (s.ok()) return s;
  }
  return s;
}

// Receives (frames are dropped) until `counter` reaches `value`, for at most 5 s: no fixed wait
// for what a busy machine may deliver late.
bool receive_until(MerlinSource& source, std::string_view counter, std::uint64_t value) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  DetectorFrame f;
  while (source.health().get(counter) < value && std::chrono::steady_clock::now() < deadline)
    (void)source.receive(&f, 20ms);
  return source.health().get(counter) >= value;
}

}  // namespace

TEST_CASE("merlin: the framing prefix reads back, whole or in pieces", "[merlin]") {
  const std::string message = merlin::prefix_for(5) + "HDR,x";
  CHECK(message == "MPX,0000000006,HDR,x");
  std::uint64_t length = 0;
  std::string why;
  CHECK(merlin::read_prefix(bytes_of(message), &length, &why) == merlin::PrefixStatus::kOk);
  CHECK(length == 6);
  for (std::size_t n = 0; n < merlin::kPrefixBytes + 1; ++n)
    CHECK(merlin::read_prefix(bytes_of(message.substr(0, n)), &length, &why) ==
          merlin::PrefixStatus::kNeedMore);
  for (const std::string bad : {"XPX,0000000006,", "MPX,00000x0006,", "MPX,0000000006;",
                                "MPX,0000000000,", "M!"}) {
    INFO(bad);
    CHECK(merlin::read_prefix(bytes_of(bad), &length, &why) == merlin::PrefixStatus::kBad);
  }
  CHECK(merlin::find_prefix(bytes_of("junkMPX,00"), 1) == 4);
  CHECK(merlin::find_prefix(bytes_of("junkMP"), 1) == 4);  // may be the next prefix's start
  CHECK(merlin::find_prefix(bytes_of("junk"), 1) == std::string::npos);
}

TEST_CASE("merlin: frames parse back to their header and big-endian pixels", "[merlin]") {
  for (PixelType type : {PixelType::kUint8, PixelType::kUint16, PixelType::kUint32}) {
    const float top = type == PixelType::kUint8 ? 250.f : type == PixelType::kUint16 ? 60000.f : 3e6f;
    const std::vector<float> counts = test_counts(6 * 10, top);
    const std::vector<std::byte> m =
        merlin::frame_message(7, 6, 10, type, encode_payload(counts, type));
    std::uint64_t length = 0;
    std::string why;
    REQUIRE(merlin::read_prefix(m, &length, &why) == merlin::PrefixStatus::kOk);
    REQUIRE(m.size() == merlin::kPrefixBytes + length);
    const std::span<const std::byte> body = std::span(m).subspan(merlin::kPrefixBytes + 1);
    const auto h = merlin::parse_frame_header(body, &why);
    REQUIRE(h);
    CHECK(h->number == 7);
    CHECK(h->header_bytes == merlin::kFrameHeaderBytes);
    CHECK(h->height == 6);
    CHECK(h->width == 10);
    CHECK(merlin::pixel_type_of(h->depth) == type);
    std::vector<float> back(counts.size());
    merlin::decode_pixels(body.subspan(h->header_bytes), type, back.data());
    for (std::size_t i = 0; i < counts.size(); ++i) CHECK(back[i] == std::round(counts[i]));
    if (type == PixelType::kUint16) {  // big-endian on the wire
      const auto* p = reinterpret_cast<const unsigned char*>(body.data() + h->header_bytes + 2);
      CHECK(((p[0] << 8) | p[1]) == static_cast<int>(std::round(counts[1])));
    }
  }
  std::string why;
  CHECK_FALSE(merlin::parse_frame_header(bytes_of("MQ1,1,00384,01,0008"), &why));
  CHECK_FALSE(merlin::parse_frame_header(bytes_of("MQ1,x,00384,01,0008,0008,U16,1x1"), &why));
  CHECK_FALSE(merlin::parse_frame_header(bytes_of("MQX,1,00384,01,0008,0008,U16,1x1"), &why));
  CHECK(merlin::pixel_type_of("R64") == std::nullopt);
}

TEST_CASE("merlin: the acquisition header and control messages", "[merlin]") {
  const std::vector<std::byte> m = merlin::acquisition_header_message(123, 12);
  const std::string text = text_of(m).substr(merlin::kPrefixBytes + 1);
  CHECK(text.starts_with("HDR,"));
  const merlin::AcquisitionHeader h = merlin::parse_acquisition_header(text);
  CHECK(h.frames_in_acquisition == 123);
  CHECK(h.frames_per_trigger == 1);
  CHECK(h.counter_depth == 12);
  CHECK(merlin::parse_acquisition_header("Frames in Acquisition (Number):\t9\r\n")
            .frames_in_acquisition == 9);
  // The length counts the comma before the type: ",SET,NUMFRAMESTOACQUIRE,100" is 27 bytes.
  CHECK(merlin::control_message({"SET", "NUMFRAMESTOACQUIRE", "100"}) ==
        "MPX,0000000027,SET,NUMFRAMESTOACQUIRE,100");
  CHECK(merlin::split_body("GET,DETECTORSTATUS,0,0") ==
        std::vector<std::string>{"GET", "DETECTORSTATUS", "0", "0"});
}

TEST_CASE("merlin source: a header before the trigger, frames placed by number, bad input counted",
          "[merlin][ingest]") {
  FakeMerlin fake;
  auto link = std::make_shared<MerlinLink>("127.0.0.1", fake.port());
  MerlinSource source(link, source_config(fake.port()), "s1");
  fake.accept_from(source);
  DetectorFrame f;
  fake.send(frame(1, 5));                                // before any header: discarded
  fake.send(merlin::acquisition_header_message(4, 12));  // before the trigger and the positions
  REQUIRE(receive_until(source, counters::kMerlinAcquisitionsStarted, 1));
  REQUIRE(source.positions_issued(request(0, 4)).ok());
  fake.send("MPX,00000x0006,junk");                        // bad framing
  fake.send(merlin::prefix_for(4) + "FOO,");               // unknown message
  fake.send(merlin::prefix_for(20) + "MQ1,1,2,3,4,5,6,7,8,");  // malformed header
  fake.send(frame(1, 5, 4));                               // wrong shape
  fake.send(frame(1, 5, 8, PixelType::kUint32));           // wrong dtype
  std::vector<std::byte> lying = frame(1, 5);
  lying.resize(lying.size() - 2);  // the body no longer holds the pixels its header says
  const std::string fixed = merlin::prefix_for(lying.size() - merlin::kPrefixBytes - 1);
  std::memcpy(lying.data(), fixed.data(), fixed.size());
  fake.send(lying);
  fake.send(frame(9, 5));                                  // never issued
  // Frame 1 arrives one byte at a time: the source waits for the rest.
  const std::string one = text_of(frame(1, 1));
  for (char c : one) fake.send(std::string(1, c));
  for (std::uint64_t n = 2; n <= 4; ++n) fake.send(frame(n, float(n)));
  for (std::uint64_t n = 1; n <= 4; ++n) {
    REQUIRE(next_frame(source, &f).ok());
    CHECK(f.frame_index == n - 1);
    CHECK(f.position_index == n - 1);
    CHECK(f.position_A.x == double(n - 1));
    CHECK(f.session_id == "s1");
    CHECK(f.rows == 8);
    CHECK(f.counts[0] == float(n));
  }
  const HealthCounters& h = source.health();
  CHECK(h.get(counters::kMerlinNoAcquisition) == 1);
  CHECK(h.get(counters::kMerlinAcquisitionsStarted) == 1);
  CHECK(h.get(counters::kMerlinBadFraming) == 1);
  CHECK(h.get(counters::kMerlinUnknownMessage) == 1);
  CHECK(h.get(counters::kMerlinMalformedHeader) == 1);
  CHECK(h.get(counters::kFramesWrongShape) == 1);
  CHECK(h.get(counters::kFramesDtypeMismatch) == 1);
  CHECK(h.get(counters::kMerlinSizeMismatch) == 1);
  CHECK(h.get(counters::kMerlinFrameNotIssued) == 1);
  CHECK(h.get(counters::kFramesReceivedOk) == 4);
}

TEST_CASE("merlin source: a message cut by the end of the connection, and lengths no frame has",
          "[merlin][ingest]") {
  FakeMerlin fake;
  auto link = std::make_shared<MerlinLink>("127.0.0.1", fake.port());
  MerlinSource source(link, source_config(fake.port()), "s1");
  fake.accept_from(source);
  fake.send(merlin::acquisition_header_message(2, 12));
  REQUIRE(source.positions_issued(request(0, 2)).ok());
  fake.send("MPX,9999999999,");  // more than any frame: resynced at the next MPX,
  // Longer than an 8 x 8 frame, but a length a larger detector's frame has: skipped by length.
  fake.send(frame(1, 7, 256));
  fake.send(frame(1, 1));
  DetectorFrame f;
  REQUIRE(next_frame(source, &f).ok());
  CHECK(f.frame_index == 0);
  const std::vector<std::byte> whole = frame(2, 2);
  fake.send(std::vector<std::byte>(whole.begin(), whole.begin() + 100));
  fake.drop();  // the Merlin went away mid-message
  CHECK(receive_until(source, counters::kMerlinTruncated, 1));
  CHECK(source.health().get(counters::kMerlinTruncated) == 1);
  CHECK(source.health().get(counters::kFrameStreamDisconnects) == 1);
  CHECK(source.health().get(counters::kMerlinBadLength) == 2);
  // It connects again, and the frame sent whole is taken.
  fake.accept_from(source);
  fake.send(whole);
  REQUIRE(next_frame(source, &f).ok());
  CHECK(f.frame_index == 1);
}

TEST_CASE("merlin source: a new acquisition header after some frames is an abort", "[merlin][ingest]") {
  FakeMerlin fake;
  auto link = std::make_shared<MerlinLink>("127.0.0.1", fake.port());
  std::vector<std::string> faults;
  MerlinSource source(link, source_config(fake.port()), "s1",
                      [&](std::string why) { faults.push_back(std::move(why)); });
  fake.accept_from(source);
  fake.send(merlin::acquisition_header_message(6, 12));
  // The header is read: the source knows the acquisition's 6 frames.
  REQUIRE(receive_until(source, counters::kMerlinAcquisitionsStarted, 1));
  REQUIRE(source.positions_issued(request(0, 3)).ok());
  REQUIRE(source.positions_issued(request(3, 3, 1)).ok());
  CHECK_FALSE(source.positions_issued(request(6, 1, 2)).ok());  // beyond its 6 frames
  fake.send(frame(1, 1));
  fake.send(frame(2, 2));
  fake.send(merlin::acquisition_header_message(6, 12));
  fake.send(frame(1, 1));
  DetectorFrame f;
  REQUIRE(next_frame(source, &f).ok());
  REQUIRE(next_frame(source, &f).ok());
  CHECK_FALSE(next_frame(source, &f, 300ms).ok());
  REQUIRE(faults.size() == 1);
  CHECK_THAT(faults[0], Catch::Contains("aborted on the Merlin; frames 3..6 of the 6 issued never arrived (4 lost)"));
  CHECK(source.health().get(counters::kMerlinAcquisitionsAborted) == 1);
  CHECK(source.health().get(counters::kMerlinFramesMissing) == 4);
  CHECK(source.health().get(counters::kMerlinNoAcquisition) == 1);  // the new acquisition's frame
}

TEST_CASE("merlin source: an acquisition after the session's complete one is not the session's",
          "[merlin][ingest]") {
  FakeMerlin fake;
  auto link = std::make_shared<MerlinLink>("127.0.0.1", fake.port());
  std::vector<std::string> faults;
  MerlinSource source(link, source_config(fake.port()), "s1",
                      [&](std::string why) { faults.push_back(std::move(why)); });
  fake.accept_from(source);
  // Its header gives the count (2), or none (0, as a header without the line would).
  const std::uint64_t count = GENERATE(2, 0);
  fake.send(merlin::acquisition_header_message(count, 12));
  REQUIRE(source.positions_issued(request(0, 2)).ok());
  fake.send(frame(1, 1));
  fake.send(frame(2, 2));
  fake.send(merlin::acquisition_header_message(2, 12));
  fake.send(frame(1, 9));
  DetectorFrame f;
  REQUIRE(next_frame(source, &f).ok());
  REQUIRE(next_frame(source, &f).ok());
  CHECK(f.frame_index == 1);
  CHECK_FALSE(next_frame(source, &f, 300ms).ok());
  CHECK(faults.empty());
  CHECK(source.health().get(counters::kMerlinNoAcquisition) == 1);
  CHECK(source.health().get(counters::kMerlinAcquisitionsAborted) == 0);
}

TEST_CASE("merlin source: a gap in the frame numbers is a fault", "[merlin][ingest]") {
  FakeMerlin fake;
  auto link = std::make_shared<MerlinLink>("127.0.0.1", fake.port());
  std::vector<std::string> faults;
  MerlinSource source(link, source_config(fake.port()), "s1",
                      [&](std::string why) { faults.push_back(std::move(why)); });
  fake.accept_from(source);
  fake.send(merlin::acquisition_header_message(5, 12));
  REQUIRE(source.positions_issued(request(0, 5)).ok());
  fake.send(frame(1, 1));
  fake.send(frame(4, 4));
  DetectorFrame f;
  REQUIRE(next_frame(source, &f).ok());
  REQUIRE(next_frame(source, &f).ok());
  CHECK(f.frame_index == 3);
  REQUIRE(faults.size() == 1);
  CHECK_THAT(faults[0], Catch::Contains("Merlin frames 2..3 never arrived (2 lost"));
  CHECK(source.health().get(counters::kMerlinFramesMissing) == 2);
}

TEST_CASE("merlin source: arming drops what came before, sets the acquisition, stops it at the end",
          "[merlin][ingest]") {
  FakeMerlin fake;
  FakeControl control;
  auto link = std::make_shared<MerlinLink>("127.0.0.1", fake.port());
  REQUIRE(link->connect(1000ms));
  fake.accept_from_link();
  // An earlier acquisition's header and frame, arrived before this session arms.
  fake.send(merlin::acquisition_header_message(9, 12));
  fake.send(frame(1, 9));
  bool closed = false;
  for (int i = 0; i < 100 && link->pending().size() < 200; ++i) link->read(20ms, &closed);
  REQUIRE(link->pending().size() > 200);
  MerlinSourceConfig c = source_config(fake.port());
  c.control_port = control.port();
  c.frames_per_acquisition = 3;
  {
    MerlinSource source(link, c, "s1");
    CHECK(link->pending().empty());
    CHECK(control.requests() == std::vector<std::string>{"SET,NUMFRAMESTOACQUIRE,3",
                                                         "SET,TRIGGERSTART,1",
                                                         "CMD,STARTACQUISITION"});
    for (int i = 0; i < 250 && control.connections() < 1; ++i) std::this_thread::sleep_for(20ms);
    CHECK(control.connections() == 1);  // the three on one connection
    fake.send(merlin::acquisition_header_message(3, 12));
    REQUIRE(source.positions_issued(request(0, 3)).ok());
    fake.send(frame(1, 1));
    DetectorFrame f;
    REQUIRE(next_frame(source, &f).ok());
    CHECK(f.frame_index == 0);
    CHECK(f.counts[0] == 1.f);  // this acquisition's frame 1, not the earlier one's
    CHECK(source.health().get(counters::kMerlinAcquisitionsStarted) == 1);
  }
  // The session ended with 1 of its 3 frames: the acquisition is stopped.
  CHECK(control.requests().back() == "CMD,STOPACQUISITION");
}

TEST_CASE("merlin source: a data connection that ended while idle is made again at the arm",
          "[merlin][ingest]") {
  FakeMerlin fake;
  FakeControl control;
  auto link = std::make_shared<MerlinLink>("127.0.0.1", fake.port());
  REQUIRE(link->connect(1000ms));
  fake.accept_from_link();
  fake.drop();  // the Merlin software restarted between sessions
  MerlinSourceConfig c = source_config(fake.port());
  c.control_port = control.port();
  c.frames_per_acquisition = 1;
  MerlinSource source(link, c, "s1");
  fake.accept_from_link();  // the connection the arm made
  fake.send(merlin::acquisition_header_message(1, 12));
  REQUIRE(source.positions_issued(request(0, 1)).ok());
  fake.send(frame(1, 4));
  DetectorFrame f;
  REQUIRE(next_frame(source, &f).ok());
  CHECK(f.counts[0] == 4.f);
  CHECK(source.health().get(counters::kMerlinAcquisitionsStarted) == 1);
}

TEST_CASE("merlin source: a Merlin that refuses the arm fails the start with its status",
          "[merlin][ingest]") {
  FakeMerlin fake;
  FakeControl busy(1);
  MerlinSourceConfig c = source_config(fake.port());
  c.control_port = busy.port();
  auto link = std::make_shared<MerlinLink>("127.0.0.1", fake.port());
  CHECK_THROWS_WITH(MerlinSource(link, c, "s1"),
                    Catch::Contains("SET NUMFRAMESTOACQUIRE refused: status 1 (busy)"));
}

TEST_CASE("merlin source: arming needs the data port and a Merlin that answers", "[merlin][ingest]") {
  FakeMerlin fake;  // listens on data; nothing on the control port
  MerlinSourceConfig c = source_config(fake.port());
  c.control_port = 1;  // nothing listens there
  c.timeout = 500ms;
  auto link = std::make_shared<MerlinLink>("127.0.0.1", fake.port());
  CHECK_THROWS_WITH(MerlinSource(link, c, "s1"),
                    Catch::Contains("Merlin control 127.0.0.1:1: cannot connect") &&
                        Catch::Contains("NUMFRAMESTOACQUIRE"));
}

TEST_CASE("config: detector.kind merlin and --detector merlin://", "[config]") {
  DetectorConfig d = apply_detector_uri({}, "merlin://merlin-pc:7000");
  CHECK(d.kind == "merlin");
  CHECK(d.endpoint == "tcp://merlin-pc:7000");
  CHECK(apply_detector_uri({}, "merlin://merlin-pc").endpoint == "tcp://merlin-pc:6342");
  CHECK(d.merlin.control_port == 6341);
  CHECK_THROWS_WITH(apply_detector_uri({}, "merlin://"), Catch::Contains("merlin://HOST[:PORT]"));
  // In a configuration, with its control port.
  nlohmann::json j = {{"session", {{"preset", "graphene-small"}, {"total_positions", 10}, {"sub_sequence_size", 5}}},
                      {"detector", {{"kind", "merlin"}, {"endpoint", "tcp://merlin-pc:6342"},
                                    {"merlin", {{"control_port", 0}, {"trigger_start", -1}}}}}};
  const ServeConfig c = parse_serve_config(j);
  CHECK(c.detector.kind == "merlin");
  CHECK(c.detector.merlin.control_port == 0);
  CHECK(c.detector.merlin.trigger_start == -1);
  CHECK(parse_serve_config(c.to_json()).detector.merlin.control_port == 0);
  zmq::context_t context;
  CHECK_THROWS_WITH(make_detector_connection(context, c.detector, 64, PixelType::kFloat32),
                    Catch::Contains("a Merlin sends uint8, uint16 or uint32"));
  CHECK(make_detector_connection(context, c.detector, 64, PixelType::kUint16, 10)->kind() == "merlin");
  DetectorConfig bound = c.detector;
  bound.bind = true;
  CHECK_THROWS_WITH(make_detector_connection(context, bound, 64, PixelType::kUint16),
                    Catch::Contains("a Merlin listens"));
  j["detector"]["merlin"]["trigger_start"] = 9;
  CHECK_THROWS_WITH(parse_serve_config(j), Catch::Contains("trigger_start"));
  std::string host;
  int port = 0;
  CHECK(parse_tcp_endpoint("tcp://[::1]:6342", &host, &port));
  CHECK(host == "::1");
  CHECK_FALSE(parse_tcp_endpoint("tcp://host:x", &host, &port));
}
