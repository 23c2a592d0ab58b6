// Probe (GPU only, not part of the package): how PINT's two memory-bound kernels should map
// pixels to threads on a GPU. Times, on the issue's 3D shape (T=8, N=2, C=2, 112x112x80, float32,
// int64 labels), the library's kernels (through the same launchers the package uses) beside
// variants that give each thread V consecutive pixels (16-byte loads for V = 4), and a plain
// read-only and copy kernel for the ceilings. Checks that every variant writes the library's
// mean / u bits. Then both of the issue's shapes with finer part splits (parts_sweep), and the
// small operations around the passes (small_ops). Built and run by gpu_check.sh's "probe" stage:
//   nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -Icsrc benchmarks/cuda_probe_pint.cu -o probe
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "pint/pint_launch.h"

using namespace noisyseg;

namespace {

constexpr int kT = 8, kN = 2, kC = 2, kS = 112 * 112 * 80;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::printf("CUDA error %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// V consecutive floats from p (16-byte aligned for V = 4, 8 for V = 2) through the read-only path.
template <int V, bool Vec>
__device__ __forceinline__ void ld(const float* p, float* out) {
  if constexpr (Vec && V == 4) {
    const float4 v = __ldg(reinterpret_cast<const float4*>(p));
    out[0] = v.x; out[1] = v.y; out[2] = v.z; out[3] = v.w;
  } else if constexpr (Vec && V == 2) {
    const float2 v = __ldg(reinterpret_cast<const float2*>(p));
    out[0] = v.x; out[1] = v.y;
  } else {
#pragma unroll
    for (int v = 0; v < V; ++v) out[v] = __ldg(p + v);
  }
}
template <int V, bool Vec>
__device__ __forceinline__ void st(float* p, const float* in) {
  if constexpr (Vec && V == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(in[0], in[1], in[2], in[3]);
  } else if constexpr (Vec && V == 2) {
    *reinterpret_cast<float2*>(p) = make_float2(in[0], in[1]);
  } else {
#pragma unroll
    for (int v = 0; v < V; ++v) p[v] = in[v];
  }
}

// The two-class stacked uncertainty, V consecutive pixels a thread (S % V == 0), the library's
// per-pixel math (pint_math.h McStacked::element) and part split rounded to multiples of V.
template <int V, bool Vec, int MinB, int Unroll>
__global__ __launch_bounds__(kThreads, MinB) void unc_kernel(const float* x, const int64_t* target, float* mean,
                                                             float* u, double* partials,
                                                             int parts, int T, int N, int S, float scale) {
  const int n = N * S, part = blockIdx.x, stride = N * 2 * S;
  const int begin = int(int64_t(n) * part / parts) / V * V, end = int(int64_t(n) * (part + 1) / parts) / V * V;
  float acc[3] = {0.f, 0.f, 0.f};
  for (int i = begin + int(threadIdx.x) * V; i < end; i += kThreads * V) {
    const int img = i / S, s = i - img * S, off = img * 2 * S + s;
    float s1[V];
#pragma unroll
    for (int v = 0; v < V; ++v) s1[v] = 0.f;
#pragma unroll Unroll
    for (int t = 0; t < T; ++t) {
      float a[V], b[V];
      ld<V, Vec>(x + t * stride + off, a);
      ld<V, Vec>(x + t * stride + off + S, b);
#pragma unroll
      for (int v = 0; v < V; ++v) s1[v] += pint::two_class_p1(a[v], b[v]);
    }
    float m0[V], m1[V], uu[V];
#pragma unroll
    for (int v = 0; v < V; ++v) pint::two_class_mean_entropy(s1[v], 1.f / float(T), scale, m0 + v, m1 + v, uu + v);
    st<V, Vec>(mean + off, m0);
    st<V, Vec>(mean + off + S, m1);
    st<V, Vec>(u + i, uu);
    int32_t y[V], valid[V];
    const int bad = pint::strip_labels<V>(target, i, V, 2, -100, y, valid);
    pint::add_image_sums<V>(uu, valid, V, acc);
    acc[2] += float(bad);
  }
  block_write_partials<3>(acc, partials, part);
}

// Any one-pass strip body with V consecutive pixels a thread (its strip<V>, as the CPU calls it).
template <int V, int K, typename Body>
__global__ __launch_bounds__(kThreads) void strip_v_kernel(int64_t cols, int parts, int n, double* partials, Body body) {
  const int part = blockIdx.x;
  const int begin = int(int64_t(n) * part / parts) / V * V, end = int(int64_t(n) * (part + 1) / parts) / V * V;
  float acc[K > 0 ? K : 1] = {};
  for (int i = begin + int(threadIdx.x) * V; i < end; i += kThreads * V) {
    const int row = i / int(cols);
    body.template strip<V>(row, i - row * int(cols), i, V, acc);
  }
  block_write_partials<K>(acc, partials, part);
}

__global__ void fill_kernel(float* x, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13; h *= 3266489917u; h ^= h >> 16;
    x[i] = (float(h & 0xffffff) / float(0x1000000) - 0.5f) * 8.f;
  }
}
__global__ void labels_kernel(int64_t* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const uint32_t h = uint32_t(i) * 2654435761u;
    y[i] = (h >> 28) == 0 ? -100 : int64_t((h >> 20) & 1u);
  }
}
// Four independent 16-byte loads a thread an iteration (n4 a multiple of 4 * the grid's threads
// is not needed: the tail is guarded).
__global__ void read_kernel(const float4* x, int64_t n4, float* out) {
  float s = 0.f;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += 4 * step) {
    float4 v[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = i + k * step < n4 ? __ldg(x + i + k * step) : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int k = 0; k < 4; ++k) s += v[k].x + v[k].y + v[k].z + v[k].w;
  }
  if (s == 12345.f) out[0] = s;  // keeps the loads
}
__global__ void copy_kernel(const float4* x, float4* y, int64_t n4) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __ldg(x + i);
}

struct Timer {
  void* flush = nullptr;
  size_t flush_bytes = size_t(256) << 20;
  cudaEvent_t e0, e1;
  Timer() {
    check(cudaMalloc(&flush, flush_bytes), "malloc flush");
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
  }
  // Median microseconds of `reps` runs of f, the L2 overwritten before each.
  template <typename F>
  double median_us(F&& f, int reps = 25) {
    std::vector<double> t;
    f();
    check(cudaDeviceSynchronize(), "warm-up");
    for (int r = 0; r < reps; ++r) {
      cudaMemsetAsync(flush, r & 0xff, flush_bytes);
      cudaEventRecord(e0);
      f();
      cudaEventRecord(e1);
      check(cudaEventSynchronize(e1), "timed run");
      float ms = 0.f;
      cudaEventElapsedTime(&ms, e0, e1);
      t.push_back(ms * 1e3);
    }
    check(cudaGetLastError(), "launch");
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }
};

template <typename Tv>
Tv* dalloc(size_t n) {
  Tv* p = nullptr;
  check(cudaMalloc(&p, n * sizeof(Tv)), "malloc");
  return p;
}

size_t mismatches(const float* a, const float* b, size_t n) {
  std::vector<float> ha(n), hb(n);
  cudaMemcpy(ha.data(), a, n * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(hb.data(), b, n * 4, cudaMemcpyDeviceToHost);
  size_t bad = 0;
  for (size_t k = 0; k < n; ++k) bad += std::memcmp(&ha[k], &hb[k], 4) != 0;
  return bad;
}

// The package's part counts (noisyseg_ext/ops/_kernels.py num_parts, mc_uncertainty.py
// _image_parts): about 2048 pixels a part, at most 2048; the uncertainty's a multiple of N.
int loss_parts_for(int64_t npix) { return int(std::max<int64_t>(1, std::min<int64_t>(2048, (npix + 2047) / 2048))); }
int image_parts_for(int N, int64_t npix) { return N * std::max(1, (loss_parts_for(npix) + N - 1) / N); }

// The library's two-class kernels on one shape with the part count the package uses (about 2048
// pixels a part, a multiple of N) and with finer splits: the 2D shape has 128 parts for 132
// multiprocessors, so a thread runs two groups of pixels one after the other (latency-bound).
// A finer split on CUDA would change only the order of the image sums (stacked and streaming
// alike). Checks that every split writes the same mean / u bits.
void parts_sweep(Timer& timer, int T, int N, int S) {
  const int64_t npix = int64_t(N) * S, nx = int64_t(T) * N * 2 * S;
  const int base = image_parts_for(N, npix);
  float *x = dalloc<float>(nx), *student = dalloc<float>(N * 2 * S), *mean = dalloc<float>(N * 2 * S),
        *u = dalloc<float>(npix), *mean_ref = dalloc<float>(N * 2 * S), *u_ref = dalloc<float>(npix),
        *dloss = dalloc<float>(N * 2 * S);
  int64_t* target = dalloc<int64_t>(npix);
  uint8_t* gate = dalloc<uint8_t>(npix);
  double* partials = dalloc<double>(4 * 8 * base);
  fill_kernel<<<1024, 256>>>(x, nx, 3u);
  fill_kernel<<<1024, 256>>>(student, N * 2 * S, 5u);
  labels_kernel<<<1024, 256>>>(target, npix);
  check(cudaDeviceSynchronize(), "inputs");
  const double unc_mb = (nx * 4 + npix * 8 + N * 2 * S * 4 + npix * 4) / 1e6;
  const double loss_mb = (N * 2 * S * 4 * 3 + npix * (8 + 4 + 1)) / 1e6;
  std::printf("\nshape T=%d N=%d C=2 S=%d: uncertainty %.1f MB, loss forward %.1f MB, package parts %d\n", T, N, S,
              unc_mb, loss_mb, base);
  const CudaStripLauncher launch{0, "probe"};
  pint::McStacked<float, int64_t> ref{x, target, mean_ref, u_ref, T, N, 2, S, -100, 1.f};
  launch.launch_strips<4, uint32_t, 3, float>(N, S, base, partials, T + 1, ref);
  for (int k : {1, 2, 4, 8}) {
    const int parts = base * k;
    char name[64], note[96];
    pint::McStacked<float, int64_t> body{x, target, mean, u, T, N, 2, S, -100, 1.f};
    check(cudaMemset(mean, 0xff, N * 2 * S * 4), "poison");
    const double us = timer.median_us([&] { launch.launch_strips<4, uint32_t, 3, float>(N, S, parts, partials, T + 1, body); });
    std::snprintf(name, sizeof name, "uncertainty kernel V=4, %d parts", parts);
    std::snprintf(note, sizeof note, "mean %zu, u %zu bits differ", mismatches(mean_ref, mean, N * 2 * S), mismatches(u_ref, u, npix));
    std::printf("%-44s %9.1f %9.0f %s\n", name, us, unc_mb / us * 1e3, note);
  }
  pint::LossForward<float, int64_t> lf{student, target, mean_ref, u_ref, nullptr, gate, nullptr, dloss,
                                       2, S, -100, 0.5f, 1.f, true, 1.f};
  const OnePassDevice<decltype(lf)> lf1{lf};
  for (int k : {1, 2, 4, 8}) {
    const int parts = base * k;
    char name[64];
    const double us = timer.median_us([&] { launch.launch_strips<2, uint32_t, 4, float>(N, S, parts, partials, 1, lf1); });
    std::snprintf(name, sizeof name, "loss forward kernel V=2, %d parts", parts);
    std::printf("%-44s %9.1f %9.0f\n", name, us, loss_mb / us * 1e3);
  }
  for (void* p : {(void*)x, (void*)student, (void*)mean, (void*)u, (void*)mean_ref, (void*)u_ref, (void*)dloss,
                  (void*)target, (void*)gate, (void*)partials})
    cudaFree(p);
}

// The small operations around PINT's passes: each launch beside its pass (the library's own
// sequences timed with events), and a loss forward whose last block finishes the reduction (one
// launch fewer; a __device__ counter that the last block resets to 0, so it needs no memset).
__device__ unsigned int g_blocks_done = 0;

template <int V, typename Body, typename Finish>
__global__ __launch_bounds__(kThreads, 4) void loss_last_block_kernel(int64_t cols, int parts, int n, double* partials,
                                                                       Body body, Finish fin) {
  const int part = blockIdx.x;
  const int begin = int(int64_t(n) * part / parts) / V * V, end = int(int64_t(n) * (part + 1) / parts) / V * V;
  float acc[4] = {};
  for (int i = begin + int(threadIdx.x) * V; i < end; i += kThreads * V) {
    const int row = i / int(cols);
    body.template strip<V>(row, i - row * int(cols), i, V, acc);
  }
  block_write_partials<4>(acc, partials, part);
  __shared__ bool last;
  if (threadIdx.x == 0) {
    __threadfence();  // this block's partials (written by thread 0) before its count
    last = atomicAdd(&g_blocks_done, 1u) == unsigned(gridDim.x) - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  double a[4] = {};
  for (int p = threadIdx.x; p < parts; p += blockDim.x)
    for (int k = 0; k < 4; ++k) a[k] += __ldcg(partials + p * 4 + k);  // L2: other blocks' writes
  double sums[4];
  block_sum<4>(a, sums);
  if (threadIdx.x == 0) {
    fin.finish(0, sums);
    g_blocks_done = 0;
  }
}

void small_ops(Timer& timer, int T, int N, int S) {
  const int64_t npix = int64_t(N) * S, nx = int64_t(T) * N * 2 * S;
  const int loss_parts = loss_parts_for(npix), mc_parts = image_parts_for(N, npix);
  float *x = dalloc<float>(nx), *student = dalloc<float>(N * 2 * S), *mean = dalloc<float>(N * 2 * S),
        *u = dalloc<float>(npix), *dloss = dalloc<float>(N * 2 * S), *grad = dalloc<float>(N * 2 * S),
        *image = dalloc<float>(N), *bad = dalloc<float>(N), *loss = dalloc<float>(1), *stats = dalloc<float>(4),
        *stats2 = dalloc<float>(4), *g = dalloc<float>(1);
  int64_t* target = dalloc<int64_t>(npix);
  uint8_t *gate = dalloc<uint8_t>(npix), *image_gate = dalloc<uint8_t>(N);
  double* partials = dalloc<double>(4 * std::max(mc_parts, loss_parts));
  fill_kernel<<<1024, 256>>>(x, nx, 11u);
  fill_kernel<<<1024, 256>>>(student, N * 2 * S, 13u);
  labels_kernel<<<1024, 256>>>(target, npix);
  const float one = 1.f;
  check(cudaMemcpy(g, &one, 4, cudaMemcpyHostToDevice), "g");
  check(cudaDeviceSynchronize(), "inputs");
  const CudaStripLauncher launch{0, "probe"};

  PintArgs mc;
  mc.dtype = kFloat32; mc.label_dtype = kInt64;
  mc.x = uintptr_t(x); mc.target = uintptr_t(target); mc.partials = uintptr_t(partials);
  mc.T = T; mc.N = N; mc.C = 2; mc.S = S; mc.parts = mc_parts;
  mc.mean = uintptr_t(mean); mc.u = uintptr_t(u); mc.image = uintptr_t(image); mc.bad = uintptr_t(bad);
  pint_mc_stacked(mc, launch);
  PintArgs lf = mc;
  lf.x = uintptr_t(student); lf.parts = loss_parts; lf.mu = uintptr_t(mean); lf.u = uintptr_t(u);
  lf.image_u = uintptr_t(image); lf.image_mode = 2; lf.keep = std::max(1, N / 2);
  lf.image_gate = uintptr_t(image_gate); lf.gate = uintptr_t(gate); lf.loss = uintptr_t(loss);
  lf.stats = uintptr_t(stats); lf.dloss = uintptr_t(dloss); lf.has_pixel_threshold = true;
  lf.pixel_threshold = 0.5; lf.reduction = pint::kMean;
  PintArgs bw;
  bw.dtype = kFloat32; bw.N = N; bw.C = 2; bw.S = S; bw.parts = loss_parts; bw.dloss = uintptr_t(dloss);
  bw.g = uintptr_t(g); bw.stats = uintptr_t(stats); bw.grad = uintptr_t(grad); bw.reduction = pint::kMean;
  pint_loss_forward(lf, launch);
  check(cudaDeviceSynchronize(), "library step");

  std::printf("\nsmall operations, T=%d N=%d C=2 S=%d (mc parts %d, loss parts %d)\n", T, N, S, mc_parts, loss_parts);
  auto row = [](const char* name, double us) { std::printf("%-52s %9.1f\n", name, us); };
  pint::McStacked<float, int64_t> mcb{x, target, mean, u, T, N, 2, S, -100, 1.f};
  row("uncertainty kernel alone", timer.median_us([&] { launch.launch_strips<4, uint32_t, 3, float>(N, S, mc_parts, partials, T + 1, mcb); }));
  row("library mc_uncertainty (kernel + image finish)", timer.median_us([&] { pint_mc_stacked(mc, launch); }));
  pint::LossForward<float, int64_t> lfb{student, target, mean, u, image_gate, gate, nullptr, dloss,
                                        2, S, -100, 0.5f, 1.f, true, 1.f};
  const OnePassDevice<decltype(lfb)> lf1{lfb};
  const pint::ImageGate<float> ig{image, image_gate, N, 2, 0.f, lf.keep};
  const pint::LossFinish<float, float> fin{loss, stats2, image_gate, N, pint::kMean};
  const double pass = timer.median_us([&] { launch.launch_strips<2, uint32_t, 4, float>(N, S, loss_parts, partials, 1, lf1); });
  row("loss forward kernel alone", pass);
  row("image gate kernel alone", timer.median_us([&] { launch.each_index(N, ig); }));
  row("loss finish kernel alone", timer.median_us([&] { launch.finish_rows<4>(1, loss_parts, partials, fin); }));
  row("library pint_loss forward (gate + kernel + finish)", timer.median_us([&] { pint_loss_forward(lf, launch); }));
  const double lb_us = timer.median_us([&] {
    loss_last_block_kernel<2><<<loss_parts, kThreads>>>(S, loss_parts, int(npix), partials, lfb, fin);
  });
  std::vector<float> h1(4), h2(4);
  cudaMemcpy(h1.data(), stats, 16, cudaMemcpyDeviceToHost);
  cudaMemcpy(h2.data(), stats2, 16, cudaMemcpyDeviceToHost);
  char name[96];
  std::snprintf(name, sizeof name, "loss kernel, last block finishes (stats %s)",
                std::memcmp(h1.data(), h2.data(), 12) == 0 ? "same bits" : "differ");
  row(name, lb_us);
  row("library backward", timer.median_us([&] { pint_loss_backward(bw, launch); }));
  row("library step: mc + loss forward + backward", timer.median_us([&] {
    pint_mc_stacked(mc, launch);
    pint_loss_forward(lf, launch);
    pint_loss_backward(bw, launch);
  }));
  check(cudaDeviceSynchronize(), "small ops");
  for (void* p : {(void*)x, (void*)student, (void*)mean, (void*)u, (void*)dloss, (void*)grad, (void*)image, (void*)bad,
                  (void*)loss, (void*)stats, (void*)stats2, (void*)g, (void*)target, (void*)gate, (void*)image_gate,
                  (void*)partials})
    cudaFree(p);
}

}  // namespace

int main() {
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device: %s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  const int64_t npix = int64_t(kN) * kS, nx = int64_t(kT) * kN * kC * kS;
  const int parts = image_parts_for(kN, npix);
  float* x = dalloc<float>(nx);
  float* student = dalloc<float>(kN * kC * kS);
  int64_t* target = dalloc<int64_t>(npix);
  float *mean0 = dalloc<float>(kN * kC * kS), *u0 = dalloc<float>(npix), *mean1 = dalloc<float>(kN * kC * kS),
        *u1 = dalloc<float>(npix), *scratch = dalloc<float>(nx), *dloss = dalloc<float>(kN * kC * kS);
  uint8_t* gate = dalloc<uint8_t>(npix);
  double* partials = dalloc<double>(4 * parts);
  fill_kernel<<<1024, 256>>>(x, nx, 1u);
  fill_kernel<<<1024, 256>>>(student, kN * kC * kS, 7u);
  labels_kernel<<<1024, 256>>>(target, npix);
  check(cudaDeviceSynchronize(), "inputs");
  Timer timer;
  const double unc_mb = (nx * 4 + npix * 8 + kN * kC * kS * 4 + npix * 4) / 1e6;
  const double loss_mb = (kN * kC * kS * 4 * 3 + npix * (8 + 4 + 1)) / 1e6;
  std::printf("uncertainty bytes %.1f MB, loss forward bytes %.1f MB, parts %d\n", unc_mb, loss_mb, parts);

  std::printf("%-44s %9s %9s %s\n", "kernel", "us", "GB/s", "check");
  auto row = [&](const char* name, double us, double mb, const char* note) {
    std::printf("%-44s %9.1f %9.0f %s\n", name, us, mb / us * 1e3, note);
  };
  const int64_t n4 = nx / 4;
  row("read-only float4 (teacher, 128 MB)", timer.median_us([&] { read_kernel<<<prop.multiProcessorCount * 8, 256>>>(reinterpret_cast<const float4*>(x), n4, scratch); }), nx * 4 / 1e6, "");
  row("copy float4 (teacher -> scratch, r+w)", timer.median_us([&] { copy_kernel<<<prop.multiProcessorCount * 8, 256>>>(reinterpret_cast<const float4*>(x), reinterpret_cast<float4*>(scratch), n4); }), 2 * nx * 4 / 1e6, "");

  // Library uncertainty kernel (package's launch path, image finish included).
  PintArgs a;
  a.dtype = kFloat32; a.label_dtype = kInt64;
  a.x = uintptr_t(x); a.target = uintptr_t(target); a.partials = uintptr_t(partials);
  a.T = kT; a.N = kN; a.C = kC; a.S = kS; a.parts = parts; a.mean = uintptr_t(mean0); a.u = uintptr_t(u0);
  a.image = uintptr_t(scratch);
  const CudaStripLauncher launch{0, "probe"};
  row("library mc_uncertainty (2 launches)", timer.median_us([&] { pint_mc_stacked(a, launch); }), unc_mb, "reference");
  {
    pint::McStacked<float, int64_t> body{x, target, mean0, u0, kT, kN, kC, kS, -100, 1.f};
    row("library uncertainty kernel, V=1", timer.median_us([&] { launch.launch_strips<1, uint32_t, 3, float>(kN, kS, parts, partials, kT + 1, body); }), unc_mb, "");
    row("library uncertainty kernel, V=4", timer.median_us([&] { launch.launch_strips<4, uint32_t, 3, float>(kN, kS, parts, partials, kT + 1, body); }), unc_mb, "");
  }
  auto unc = [&](const char* name, auto kernel) {
    check(cudaMemset(mean1, 0xff, kN * kC * kS * 4), "poison");
    check(cudaMemset(u1, 0xff, npix * 4), "poison");
    const double us = timer.median_us([&] { kernel<<<parts, kThreads>>>(x, target, mean1, u1, partials, parts, kT, kN, kS, 1.f); });
    char note[96];
    std::snprintf(note, sizeof note, "mean %zu, u %zu bits differ", mismatches(mean0, mean1, kN * kC * kS), mismatches(u0, u1, npix));
    row(name, us, unc_mb, note);
  };
  unc("V=1 scalar, cap 4 blocks, unroll 8", unc_kernel<1, false, 4, 8>);
  unc("V=2 float2, no cap, unroll 8", unc_kernel<2, true, 1, 8>);
  unc("V=4 float4, no cap, unroll 8", unc_kernel<4, true, 1, 8>);
  unc("V=4 float4, cap 4, unroll 8", unc_kernel<4, true, 4, 8>);
  unc("V=8 scalar loads, no cap, unroll 8", unc_kernel<8, false, 1, 8>);
  unc("V=8 scalar loads, no cap, unroll 4", unc_kernel<8, false, 1, 4>);
  unc("V=4 scalar loads, no cap, unroll 8", unc_kernel<4, false, 1, 8>);

  // Loss forward: library strips kernel (V = 1) against strip<V> with V pixels a thread.
  pint::LossForward<float, int64_t> lf{student, target, mean0, u0, nullptr, gate, nullptr, dloss,
                                       kC, kS, -100, 0.5f, 1.f, true, 1.f};
  const OnePassDevice<decltype(lf)> lf1{lf};
  row("library loss forward kernel, V=1", timer.median_us([&] { launch.launch_strips<1, uint32_t, 4, float>(kN, kS, parts, partials, 1, lf1); }), loss_mb, "");
  row("library loss forward kernel, V=2", timer.median_us([&] { launch.launch_strips<2, uint32_t, 4, float>(kN, kS, parts, partials, 1, lf1); }), loss_mb, "");
  row("loss forward strip<2> (probe's kernel)", timer.median_us([&] { strip_v_kernel<2, 4><<<parts, kThreads>>>(kS, parts, int(npix), partials, lf); }), loss_mb, "");
  pint::LossBackward<float, float> lb{dloss, student, nullptr, mean1, kC, kS, false, false};
  const double back_mb = kN * kC * kS * 8 / 1e6;
  row("library loss backward kernel (V=1)", timer.median_us([&] { launch.strips<0, float>(kN, kS, parts, nullptr, lb); }), back_mb, "");
  row("loss backward strip<4>", timer.median_us([&] { strip_v_kernel<4, 0><<<parts, kThreads>>>(kS, parts, int(npix), nullptr, lb); }), back_mb, "");
  check(cudaDeviceSynchronize(), "end");
  parts_sweep(timer, 8, 16, 128 * 128);   // the issue's 2D shape
  parts_sweep(timer, kT, kN, kS);         // and its 3D shape
  small_ops(timer, 8, 16, 128 * 128);
  small_ops(timer, kT, kN, kS);
  check(cudaDeviceSynchronize(), "end");
  return 0;
}
