// elastic on the CPU: OpenMP over lines (prefilter lines, grid elements, image rows).
#include "../common/cpu_parallel.h"
#include "elastic_launch.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN
namespace {

struct ElasticCpuLauncher {
  static constexpr int kLineBlock = 32;  // 32 adjacent prefilter lines per item: cache-friendly
  // body(i) for i in [0, n); `cost` = rough work per item, to skip threading tiny problems.
  template <typename Body>
  void for_each(int64_t n, int64_t cost, const Body& body) const {
    const int64_t grain = cost >= 256 ? 1 : (4096 + cost - 1) / (cost > 0 ? cost : 1);
    parallel_for(n, grain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) body(i);
    });
  }
  // Whole lines per thread: the line's setup (axis-0 weights) is computed once per line.
  template <typename Body>
  void lines(int64_t n_lines, int64_t line_len, const Body& body) const {
    const int64_t grain = line_len >= 1024 ? 1 : (1024 + line_len - 1) / line_len;
    parallel_for(n_lines, grain, [&](int64_t begin, int64_t end) {
      for (int64_t l = begin; l < end; ++l) body.run_line(l, 0, line_len);
    });
  }
};

}  // namespace
NOISYSEG_CPU_NAMESPACE_END

template <> void elastic_prefilter_cpu<NOISYSEG_CPU_ISA>(const ElasticPrefilterArgs& a) { elastic_prefilter(a, ElasticCpuLauncher{}); }
template <> void elastic_expand_cpu<NOISYSEG_CPU_ISA>(const ElasticExpandArgs& a) { elastic_expand(a, ElasticCpuLauncher{}); }
template <> void elastic_sample_cpu<NOISYSEG_CPU_ISA>(const ElasticSampleArgs& a) { elastic_sample(a, ElasticCpuLauncher{}); }

}  // namespace noisyseg
