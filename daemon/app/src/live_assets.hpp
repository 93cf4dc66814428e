// The live page's files (daemon/app/live/), built into the binary by embed_assets.cmake, so that
// the page works offline and needs nothing installed beside the daemon.
#pragma once

#include <span>
#include <string_view>

namespace ptypilot {

struct LiveAsset {
  std::string_view path;          // the URL path: "/" for index.html, "/live.js", ...
  std::string_view content_type;
  std::string_view body;
};

std::span<const LiveAsset> live_assets();

}  // namespace ptypilot
