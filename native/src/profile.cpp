// libtorch's operator profiler, for finding where a step's time goes: every ATen op and autograd node run on the calling
// thread between begin and end is timed and written as a Chrome trace (chrome://tracing, Perfetto) when end is called.
#include "common.h"
#include <torch/csrc/autograd/profiler_legacy.h>
#include <memory>

namespace {
thread_local std::unique_ptr<torch::autograd::profiler::RecordProfile> recording;
}

RT_API int rt_profile_begin(const char* trace_path) {
  RT_GUARD(-1,
    TORCH_CHECK(trace_path != nullptr && *trace_path != 0, "profile: a trace file path is required");
    TORCH_CHECK(!recording, "profile: this thread is already recording a profile; end it first");
    recording = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(trace_path));
    return 0;
  )
}

RT_API int rt_profile_end() {
  RT_GUARD(-1,
    TORCH_CHECK(recording, "profile: this thread is not recording a profile");
    recording.reset();   // writes the trace
    return 0;
  )
}
