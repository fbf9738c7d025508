// The standard process families every Prometheus client exports (process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
// process_max_fds, process_start_time_seconds), read from /proc/self at scrape time, and
// das_build_info{version} (1), so that dashboards written for any exporter work here.
#pragma once

#include "metrics/registry.h"

namespace das::metrics {

// Adds the collector to `registry`; the version is the project's (CMake's PROJECT_VERSION).
void AddProcessMetrics(Registry& registry);

}  // namespace das::metrics
