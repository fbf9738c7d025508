// The web console's static files (src/control/console/), embedded in the binary at build time
// (embed_console.cmake): the page at GET /, its script and style under /console/. Nothing in
// them loads from anywhere but the control node.
#pragma once

#include <string_view>
#include <vector>

namespace das::control {

struct ConsoleAsset {
  std::string_view path;          // the route: "/", "/console/console.js", ...
  std::string_view content_type;  // with charset
  std::string_view body;
};

const std::vector<ConsoleAsset>& ConsoleAssets();

}  // namespace das::control
