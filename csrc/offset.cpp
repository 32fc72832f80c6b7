#include "offset.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define LIPLEAK_X86 1
#endif

// Vectorised copies of plain loops where the compiler and OS support ifunc dispatch; with
// per-element IEEE operations and -ffp-contract=off they round exactly like the default copy.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define LIPLEAK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LIPLEAK_CLONES
#endif

namespace lipleak {
namespace {

constexpr double kPairEps = 1e-6;  // torch.nn.functional.pairwise_distance's eps
constexpr float kPairEpsF = static_cast<float>(kPairEps);
constexpr int kRows = 4;             // video rows per work item: 16 KiB of floats at d = 1024
constexpr int kLanes = 16;           // float32 partial sums per distance; element k -> lane k % 16
constexpr int64_t kFlushSteps = 32;  // 16-element steps between float32 -> double flushes
// n * S * d above which threads start: ~0.25 ms of serial work (N ~ 130 at d = 1024, so a
// whole 10-s clip is searched on every core, while the pipeline's 32-row streaming chunks
// stay serial). Measured at N = 250: 0.45 ms serial, 0.23 ms on two idle cores, but up to
// ~4 ms when another process holds a core and a thread waits a time slice at the end of
// the loop; a few ms per video is negligible next to SyncNet.
constexpr int64_t kParallelWork = int64_t{1} << 22;

// The float32 kernel (SPEC §2 distances, as torch computes pairwise_distance in float32):
// per element t = (w - a) + eps rounded to float32, then acc[k % 16] = fma(t, t, acc[k % 16])
// in float32. Every 32 steps (512 elements) the 16 float32 lanes are added into 16 double
// lanes, which bounds the float32 rounding to ~32 ulp of the sum whatever d is. The copies
// below (AVX-512, AVX2, portable scalar) do exactly these per-lane IEEE operations in this
// order, and all reductions across lanes are the same scalar code, so every copy gives the
// same bits; -ffp-contract=off keeps the compiler from fusing anything on its own.
//
// Lanes(w, r, a, dv, dl): for the first r <= kRows rows w[q], dl[q][l] = the double lanes
// over the first dv elements (dv a multiple of 16).
using LanesFn = void (*)(const float* const*, int, const float*, int64_t, double (*)[kLanes]);

template <int R>
inline void lanes_scalar_r(const float* const* w, const float* a, int64_t dv,
                           double (*dl)[kLanes]) {
    for (int64_t k = 0; k < dv;) {
        float acc[R][kLanes] = {};
        const int64_t kend = std::min(dv, k + kFlushSteps * kLanes);
        for (; k < kend; k += kLanes)
            for (int q = 0; q < R; ++q)
                for (int l = 0; l < kLanes; ++l) {
                    const float t = (w[q][k + l] - a[k + l]) + kPairEpsF;
                    acc[q][l] = std::fma(t, t, acc[q][l]);
                }
        for (int q = 0; q < R; ++q)
            for (int l = 0; l < kLanes; ++l) dl[q][l] += static_cast<double>(acc[q][l]);
    }
}

void lanes_scalar(const float* const* w, int r, const float* a, int64_t dv, double (*dl)[kLanes]) {
    switch (r) {
        case 1: lanes_scalar_r<1>(w, a, dv, dl); break;
        case 2: lanes_scalar_r<2>(w, a, dv, dl); break;
        case 3: lanes_scalar_r<3>(w, a, dv, dl); break;
        default: lanes_scalar_r<4>(w, a, dv, dl); break;
    }
}

#ifdef LIPLEAK_X86
#define LIPLEAK_AVX512 __attribute__((target("avx512f,fma")))
#define LIPLEAK_AVX2 __attribute__((target("avx2,fma")))

// dl[l] += lane l of acc, in double.
LIPLEAK_AVX512 inline void flush_avx512(__m512 acc, double* dl) {
    alignas(64) float f[kLanes];
    _mm512_store_ps(f, acc);
    for (int l = 0; l < kLanes; ++l) dl[l] += static_cast<double>(f[l]);
}

template <int R>
LIPLEAK_AVX512 inline void lanes_avx512_r(const float* const* w, const float* a, int64_t dv,
                                          double (*dl)[kLanes]) {
    const __m512 eps = _mm512_set1_ps(kPairEpsF);
    for (int64_t k = 0; k < dv;) {
        __m512 acc[R];
        for (int q = 0; q < R; ++q) acc[q] = _mm512_setzero_ps();
        const int64_t kend = std::min(dv, k + kFlushSteps * kLanes);
        for (; k < kend; k += kLanes) {
            const __m512 av = _mm512_loadu_ps(a + k);
            for (int q = 0; q < R; ++q) {
                const __m512 t = _mm512_add_ps(_mm512_sub_ps(_mm512_loadu_ps(w[q] + k), av), eps);
                acc[q] = _mm512_fmadd_ps(t, t, acc[q]);
            }
        }
        for (int q = 0; q < R; ++q) flush_avx512(acc[q], dl[q]);
    }
}

LIPLEAK_AVX512 void lanes_avx512(const float* const* w, int r, const float* a, int64_t dv,
                                 double (*dl)[kLanes]) {
    switch (r) {
        case 1: lanes_avx512_r<1>(w, a, dv, dl); break;
        case 2: lanes_avx512_r<2>(w, a, dv, dl); break;
        case 3: lanes_avx512_r<3>(w, a, dv, dl); break;
        default: lanes_avx512_r<4>(w, a, dv, dl); break;
    }
}

// dl[l] += lane l of acc, in double.
LIPLEAK_AVX2 inline void flush_avx2(__m256 acc, double* dl) {
    alignas(32) float f[kLanes / 2];
    _mm256_store_ps(f, acc);
    for (int l = 0; l < kLanes / 2; ++l) dl[l] += static_cast<double>(f[l]);
}

template <int R>
LIPLEAK_AVX2 inline void lanes_avx2_r(const float* const* w, const float* a, int64_t dv,
                                      double (*dl)[kLanes]) {
    const __m256 eps = _mm256_set1_ps(kPairEpsF);
    for (int64_t k = 0; k < dv;) {
        __m256 acc[R][2];  // lanes 0..7 and 8..15
        for (int q = 0; q < R; ++q) acc[q][0] = acc[q][1] = _mm256_setzero_ps();
        const int64_t kend = std::min(dv, k + kFlushSteps * kLanes);
        for (; k < kend; k += kLanes) {
            const __m256 a0 = _mm256_loadu_ps(a + k), a1 = _mm256_loadu_ps(a + k + 8);
            for (int q = 0; q < R; ++q) {
                const __m256 t0 = _mm256_add_ps(_mm256_sub_ps(_mm256_loadu_ps(w[q] + k), a0), eps);
                const __m256 t1 =
                    _mm256_add_ps(_mm256_sub_ps(_mm256_loadu_ps(w[q] + k + 8), a1), eps);
                acc[q][0] = _mm256_fmadd_ps(t0, t0, acc[q][0]);
                acc[q][1] = _mm256_fmadd_ps(t1, t1, acc[q][1]);
            }
        }
        for (int q = 0; q < R; ++q) {
            flush_avx2(acc[q][0], dl[q]);
            flush_avx2(acc[q][1], dl[q] + 8);
        }
    }
}

LIPLEAK_AVX2 void lanes_avx2(const float* const* w, int r, const float* a, int64_t dv,
                             double (*dl)[kLanes]) {
    switch (r) {
        case 1: lanes_avx2_r<1>(w, a, dv, dl); break;
        case 2: lanes_avx2_r<2>(w, a, dv, dl); break;
        case 3: lanes_avx2_r<3>(w, a, dv, dl); break;
        default: lanes_avx2_r<4>(w, a, dv, dl); break;
    }
}
#endif

bool isa_available(OffsetIsa isa) {
    switch (isa) {
        case OffsetIsa::Auto:
        case OffsetIsa::Scalar: return true;
#ifdef LIPLEAK_X86
        case OffsetIsa::Avx2:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case OffsetIsa::Avx512:
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
        default: return false;
    }
}

LanesFn lanes_fn(OffsetIsa isa) {
    if (isa == OffsetIsa::Auto)
        isa = isa_available(OffsetIsa::Avx512) ? OffsetIsa::Avx512
              : isa_available(OffsetIsa::Avx2) ? OffsetIsa::Avx2
                                               : OffsetIsa::Scalar;
    switch (isa) {
#ifdef LIPLEAK_X86
        case OffsetIsa::Avx512: return lanes_avx512;
        case OffsetIsa::Avx2: return lanes_avx2;
#endif
        default: return lanes_scalar;
    }
}

// The 16 double lanes summed in one fixed tree.
inline double sum_lanes(const double* l) {
    double h[kLanes / 2];
    for (int i = 0; i < kLanes / 2; ++i) h[i] = l[i] + l[i + kLanes / 2];
    return ((h[0] + h[4]) + (h[2] + h[6])) + ((h[1] + h[5]) + (h[3] + h[7]));
}

// Squared float32-kernel distances of rows w[0..r) to the audio row a: the SIMD lanes, the
// d % 16 tail elements as one-term lanes, then one fixed summation tree in double.
void sq_dists_f32(LanesFn lanes, const float* const* w, int r, const float* a, int64_t d,
                  double* out) {
    double dl[kRows][kLanes];
    for (int q = 0; q < r; ++q) std::fill(dl[q], dl[q] + kLanes, 0.0);
    const int64_t dv = d - d % kLanes;
    if (dv > 0) lanes(w, r, a, dv, dl);
    for (int q = 0; q < r; ++q) {
        for (int64_t l = 0; dv + l < d; ++l) {
            const float t = (w[q][dv + l] - a[dv + l]) + kPairEpsF;
            dl[q][l] += static_cast<double>(t * t);
        }
        out[q] = sum_lanes(dl[q]);
    }
}

// || w - a + eps ||^2 entirely in double (the floats convert exactly; 32 lanes, element k to
// lane k % 32, fixed order): the padding distances, and the fallback for the rare pairs the
// float32 kernel cannot resolve (see accurate_in_f32). Many independent lanes keep the
// vectorised copies from waiting on one chain of additions.
LIPLEAK_CLONES double sq_dist_f64(const float* w, const float* a, int64_t d) {
    constexpr int kL = 2 * kLanes;
    double l[kL] = {};
    int64_t k = 0;
    for (; k + kL <= d; k += kL)
        for (int r = 0; r < kL; ++r) {
            const double t =
                (static_cast<double>(w[k + r]) - static_cast<double>(a[k + r])) + kPairEps;
            l[r] += t * t;
        }
    for (int r = 0; k + r < d; ++r) {
        const double t = (static_cast<double>(w[k + r]) - static_cast<double>(a[k + r])) + kPairEps;
        l[r] += t * t;
    }
    for (int r = 0; r < kLanes; ++r) l[r] += l[r + kLanes];
    return sum_lanes(l);
}

// Whether a float32-kernel squared distance over d elements is within ~1e-6 (relative) of
// the exact one. Not when float32 overflowed (|w - a| beyond ~1.8e19), nor when the distance
// is tiny (RMS of w - a + eps under ~3e-6): there rounding w - a and 1e-6 to float32 (up to
// ~6e-14 per element) is no longer negligible, and w - a = -1e-6 gives exactly 0. Real
// embeddings are nowhere near either bound; such pairs are recomputed in double.
inline bool accurate_in_f32(double sq, int64_t d) {
    return sq >= 1e-11 * static_cast<double>(d) && std::isfinite(sq);
}

// Median of an odd-length vector (the exact middle value).
double median_odd(std::vector<double> v) {
    const size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + mid, v.end());
    return v[mid];
}

// scipy.signal.medfilt(x, k): window of k centred values, zeros beyond both ends.
std::vector<double> medfilt_zero(const std::vector<double>& x, int64_t k) {
    const int64_t n = static_cast<int64_t>(x.size());
    const int64_t h = k / 2;
    std::vector<double> out(x.size()), win(static_cast<size_t>(k));
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = -h; j <= h; ++j) {
            const int64_t t = i + j;
            win[static_cast<size_t>(j + h)] = (t >= 0 && t < n) ? x[static_cast<size_t>(t)] : 0.0;
        }
        std::nth_element(win.begin(), win.begin() + h, win.end());
        out[static_cast<size_t>(i)] = win[static_cast<size_t>(h)];
    }
    return out;
}

}  // namespace

bool offset_isa_available(OffsetIsa isa) { return isa_available(isa); }

void shift_distances(const float* video, int64_t n, const float* audio, int64_t m, int64_t d,
                     int64_t vshift, int64_t row0, double* out, OffsetIsa isa) {
    const LanesFn lanes = lanes_fn(isa_available(isa) ? isa : OffsetIsa::Scalar);
    const int64_t S = 2 * vshift + 1;
    // Audio rows any video row can meet. An all-zero audio row is padding by another name:
    // its pairs keep the padding distance, so the two can never differ. zeros_before[j - jr0]
    // counts the zero rows in [jr0, j).
    const int64_t jr0 = std::min(m, std::max<int64_t>(0, row0 - vshift));
    const int64_t jr1 = std::max(jr0, std::min<int64_t>(m, row0 + n + vshift));
    std::vector<int64_t> zeros_before(static_cast<size_t>(jr1 - jr0 + 1), 0);
    for (int64_t j = jr0; j < jr1; ++j) {
        const float* a = audio + j * d;
        const bool zero = std::all_of(a, a + d, [](float x) { return x == 0.0f; });
        zeros_before[static_cast<size_t>(j - jr0 + 1)] =
            zeros_before[static_cast<size_t>(j - jr0)] + zero;
    }
    const auto zero_rows = [&](int64_t j0, int64_t j1) {  // zero rows in [j0, j1) within [jr0, jr1)
        j0 = std::clamp(j0, jr0, jr1);
        j1 = std::clamp(j1, jr0, jr1);
        return j1 > j0 ? zeros_before[static_cast<size_t>(j1 - jr0)] -
                             zeros_before[static_cast<size_t>(j0 - jr0)]
                       : 0;
    };
    const std::vector<float> zeros(static_cast<size_t>(d), 0.0f);
    const int64_t groups = (n + kRows - 1) / kRows;
    // Each entry is computed on its own, so the thread count never changes a number.
    const bool par = groups > 1 && n * S * d > kParallelWork;
#pragma omp parallel for schedule(dynamic, 8) if (par)
    for (int64_t g = 0; g < groups; ++g) {
        const int64_t i0 = g * kRows, i1 = std::min(n, i0 + kRows);
        // Rows whose shifts reach padding (or zero rows) start as the distance to a zero row,
        // in double; the others have every entry written below.
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t lo = row0 + i - vshift, hi = row0 + i + vshift + 1;
            if (lo >= 0 && hi <= m && zero_rows(lo, hi) == 0) continue;
            std::fill(out + i * S, out + (i + 1) * S,
                      std::sqrt(sq_dist_f64(video + i * d, zeros.data(), d)));
        }
        // Audio row j meets video row i at shift s = j - row0 - i + vshift.
        const int64_t j_lo = std::max(jr0, row0 + i0 - vshift);
        const int64_t j_hi = std::min(jr1, row0 + i1 + vshift);
        for (int64_t j = j_lo; j < j_hi; ++j) {
            if (zero_rows(j, j + 1)) continue;
            const float* a = audio + j * d;
            const int64_t ia = std::max(i0, j - row0 - vshift);
            const int64_t ib = std::min(i1, j - row0 + vshift + 1);
            const float* wp[kRows];
            for (int64_t i = ia; i < ib; ++i) wp[i - ia] = video + i * d;
            double sq[kRows];
            sq_dists_f32(lanes, wp, static_cast<int>(ib - ia), a, d, sq);
            for (int64_t i = ia; i < ib; ++i) {
                double q = sq[i - ia];
                if (!accurate_in_f32(q, d)) q = sq_dist_f64(video + i * d, a, d);
                out[i * S + (j - row0 - i + vshift)] = std::sqrt(q);
            }
        }
    }
}

SyncStats sync_stats(const double* d, int64_t n, int64_t s) {
    SyncStats st;
    st.mdist.assign(static_cast<size_t>(s), 0.0);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < s; ++k) st.mdist[static_cast<size_t>(k)] += d[i * s + k];
    for (auto& v : st.mdist) v /= static_cast<double>(n);

    int64_t best = 0;
    for (int64_t k = 1; k < s; ++k)
        if (st.mdist[static_cast<size_t>(k)] < st.mdist[static_cast<size_t>(best)]) best = k;
    const double med = median_odd(st.mdist);
    st.best = best;
    st.offset = s / 2 - best;
    st.lse_d = st.mdist[static_cast<size_t>(best)];
    st.lse_c = med - st.lse_d;

    std::vector<double> conf(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) conf[static_cast<size_t>(i)] = med - d[i * s + best];
    st.fconf = medfilt_zero(conf, 9);
    return st;
}

}  // namespace lipleak
