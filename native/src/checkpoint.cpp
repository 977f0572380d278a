// Checkpoint shard files: a dict of named tensors in libtorch's pickle format (torch::pickle_save; Python's
// torch.load reads it, as DeepSpeed's zero_to_fp32 does with its *_optim_states.pt). Every error names the file.
#include "common.h"
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <torch/serialize.h>

namespace {
// Runs `body`, prefixing any libtorch or I/O error with the file it was about (the zip reader's own
// messages, e.g. for a truncated file, say nothing of which file).
template <typename F>
auto about_file(const char* path, F body) -> decltype(body()) {
  try {
    return body();
  } catch (const c10::Error& e) {
    throw std::runtime_error(std::string(path) + ": " + e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(path) + ": " + e.what());
  }
}
}  // namespace

// Writes {names[i]: tensors[i]} as one pickled dict to `path`, flushed before returning (callers write to a
// temporary name and rename). 0 ok, -1 error.
RT_API int rt_tensors_save(const char* path, const char* const* names, const rt_tensor* ts, int n) {
  RT_STATUS(about_file(path, [&] {
    c10::impl::GenericDict d(c10::StringType::get(), c10::TensorType::get());
    for (int i = 0; i < n; ++i) d.insert(std::string(names[i]), ts[i]->contiguous().cpu());
    std::vector<char> bytes = torch::pickle_save(c10::IValue(d));
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot open for writing");
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f) throw std::runtime_error("short write (disk full?)");
  });)
}

// Reads a file written by rt_tensors_save, once: returns the entry count (-1 on error) and, in file order, the
// names (each freed with rt_free_string) and new tensor handles, in two arrays freed with rt_free_buffer.
RT_API int rt_tensors_load(const char* path, char*** names, rt_tensor** tensors) {
  RT_GUARD(-1,
    *names = nullptr;
    *tensors = nullptr;
    auto d = about_file(path, [&] {
      std::ifstream f(path, std::ios::binary);
      if (!f) throw std::runtime_error("cannot open");
      std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      if (bytes.empty()) throw std::runtime_error("empty file (zero bytes), not a tensor file");
      c10::IValue v = torch::pickle_load(bytes);
      if (!v.isGenericDict()) throw std::runtime_error("does not hold a dict of tensors");
      auto dict = v.toGenericDict();
      for (const auto& e : dict)
        if (!e.key().isString() || !e.value().isTensor()) throw std::runtime_error("holds an entry that is not a named tensor");
      return dict;
    });
    const size_t n = d.size();
    auto** ns = static_cast<char**>(std::calloc(n ? n : 1, sizeof(char*)));
    auto** hs = static_cast<rt_tensor*>(std::calloc(n ? n : 1, sizeof(rt_tensor)));
    if (!ns || !hs) { std::free(ns); std::free(hs); throw std::bad_alloc(); }
    size_t i = 0;
    for (const auto& e : d) {
      const std::string& k = e.key().toStringRef();
      ns[i] = static_cast<char*>(std::malloc(k.size() + 1));
      if (!ns[i]) throw std::bad_alloc();  // (a leak on a failed malloc is the least of the problems then)
      std::memcpy(ns[i], k.c_str(), k.size() + 1);
      hs[i] = rt::wrap(e.value().toTensor());
      ++i;
    }
    *names = ns;
    *tensors = hs;
    return static_cast<int>(n);
  )
}
