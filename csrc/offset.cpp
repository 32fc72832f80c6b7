#include "offset.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace lipleak {
namespace {

constexpr double kPairEps = 1e-6;  // torch.nn.functional.pairwise_distance's eps
constexpr int64_t kBlock = 32;     // video rows per work item (their doubles stay in L2)

// AVX2 copies of the hot loop where the compiler and OS support ifunc dispatch. Built with
// -ffp-contract=off, every copy rounds identically, so the numbers never depend on the CPU.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define LIPLEAK_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LIPLEAK_CLONES
#endif

typedef double d4 __attribute__((vector_size(32)));

inline d4 load4(const double* p) {
    d4 x;
    std::memcpy(&x, p, sizeof x);
    return x;
}

// Squared distances || w[q] - a + eps ||^2 of R video rows w[q] to one audio row a, both
// in double; (w - a) + eps in the order of torch's pairwise_distance.
// Each output sums eight fixed lanes (element k goes to lane k % 8), combined in a fixed
// order: the same association for R = 1 or 2, any alignment and any blocking, so a
// chunked call reproduces a full call bit for bit.
template <int R>
__attribute__((always_inline)) inline void sq_dists(const double* const* w, const double* a,
                                                    int64_t d, double* out) {
    d4 acc[R][2] = {};
    const d4 eps = {kPairEps, kPairEps, kPairEps, kPairEps};
    int64_t k = 0;
    for (; k + 8 <= d; k += 8) {
        const d4 a0 = load4(a + k), a1 = load4(a + k + 4);
        for (int q = 0; q < R; ++q) {
            const d4 t0 = (load4(w[q] + k) - a0) + eps, t1 = (load4(w[q] + k + 4) - a1) + eps;
            acc[q][0] += t0 * t0;
            acc[q][1] += t1 * t1;
        }
    }
    for (int q = 0; q < R; ++q) {
        double l[8];
        std::memcpy(l, acc[q], sizeof l);
        for (int r = 0; k + r < d; ++r) {
            const double t = (w[q][k + r] - a[k + r]) + kPairEps;
            l[r] += t * t;
        }
        out[q] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    }
}

LIPLEAK_CLONES void sq_dist1(const double* const* w, const double* a, int64_t d, double* out) {
    sq_dists<1>(w, a, d, out);
}
LIPLEAK_CLONES void sq_dist2(const double* const* w, const double* a, int64_t d, double* out) {
    sq_dists<2>(w, a, d, out);
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

void shift_distances(const float* video, int64_t n, const float* audio, int64_t m, int64_t d,
                     int64_t vshift, int64_t row0, double* out) {
    const int64_t S = 2 * vshift + 1;
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    // Threads only for long inputs (~20 ms of serial work and up): below that, start-up and
    // cores busy with decoding or inference cost more than they give.
    const bool par = blocks > 1 && n * S * d > (int64_t{1} << 26);
#pragma omp parallel if (par)
    {
        std::vector<double> wbuf(static_cast<size_t>(kBlock * d)), arow(static_cast<size_t>(d));
#pragma omp for schedule(dynamic)
        for (int64_t blk = 0; blk < blocks; ++blk) {
            const int64_t i0 = blk * kBlock, i1 = std::min(n, i0 + kBlock);
            // Video rows in double; every entry starts as the distance to a zero
            // (padding) row, computed by the same kernel as a real zero audio row would be.
            for (int64_t i = i0; i < i1; ++i) {
                double* w = wbuf.data() + (i - i0) * d;
                for (int64_t k = 0; k < d; ++k) w[k] = static_cast<double>(video[i * d + k]);
                std::fill(arow.begin(), arow.end(), 0.0);
                const double* wp[1] = {w};
                double sq;
                sq_dist1(wp, arow.data(), d, &sq);
                std::fill(out + i * S, out + (i + 1) * S, std::sqrt(sq));
            }
            // Audio row j meets video row i at shift s = j - row0 - i + vshift.
            const int64_t j_lo = std::max<int64_t>(0, row0 + i0 - vshift);
            const int64_t j_hi = std::min<int64_t>(m, row0 + i1 - 1 + vshift + 1);
            for (int64_t j = j_lo; j < j_hi; ++j) {
                for (int64_t k = 0; k < d; ++k) arow[k] = static_cast<double>(audio[j * d + k]);
                const int64_t ia = std::max(i0, j - row0 - vshift);
                const int64_t ib = std::min(i1, j - row0 + vshift + 1);
                int64_t i = ia;
                for (; i + 2 <= ib; i += 2) {
                    const double* wp[2] = {wbuf.data() + (i - i0) * d, wbuf.data() + (i + 1 - i0) * d};
                    double sq[2];
                    sq_dist2(wp, arow.data(), d, sq);
                    out[i * S + (j - row0 - i + vshift)] = std::sqrt(sq[0]);
                    out[(i + 1) * S + (j - row0 - i - 1 + vshift)] = std::sqrt(sq[1]);
                }
                for (; i < ib; ++i) {
                    const double* wp[1] = {wbuf.data() + (i - i0) * d};
                    double sq;
                    sq_dist1(wp, arow.data(), d, &sq);
                    out[i * S + (j - row0 - i + vshift)] = std::sqrt(sq);
                }
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
