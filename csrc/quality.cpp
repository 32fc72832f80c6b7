#include "quality.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace lipleak {
namespace {

constexpr int kTaps = 2 * kSsimRadius + 1;

typedef double d4 __attribute__((vector_size(32)));

inline d4 load4(const double* p) {
    d4 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store4(double* p, d4 v) { std::memcpy(p, &v, sizeof v); }
constexpr double kC1 = (0.01 * 255) * (0.01 * 255);
constexpr double kC2 = (0.03 * 255) * (0.03 * 255);

// scipy.ndimage._gaussian_kernel1d(sigma=1.5, order=0, radius=5).
std::array<double, kTaps> gaussian_taps() {
    std::array<double, kTaps> w{};
    const double sigma2 = 1.5 * 1.5;
    double sum = 0.0;
    for (int i = 0; i < kTaps; ++i) {
        const double x = i - kSsimRadius;
        w[i] = std::exp(-0.5 / sigma2 * (x * x));
        sum += w[i];
    }
    for (auto& v : w) v /= sum;
    return w;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define LIPLEAK_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LIPLEAK_CLONES
#endif

// Mean SSIM of one channel. Only output pixels at least kSsimRadius from every edge are
// averaged, and their windows lie inside the image, so the filters' boundary mode never
// enters and the separable filter runs on in-bounds pixels only. One output row at a
// time: vertical pass (scipy filters axis 0 first) into five moment rows, horizontal pass,
// SSIM; the inner loops run along x so that they vectorise. Each filtered value sums its
// 11 taps in ascending order whatever the vector width (-ffp-contract=off), so every CPU
// gives the same numbers.
LIPLEAK_CLONES double ssim_channel(const uint8_t* a, const uint8_t* b, int64_t h, int64_t w,
                                   int64_t c) {
    static const std::array<double, kTaps> g = gaussian_taps();
    const int64_t oh = h - 2 * kSsimRadius, ow = w - 2 * kSsimRadius;
    // The channel as contiguous double planes.
    std::vector<double> planes(static_cast<size_t>(2 * h * w));
    double* pa = planes.data();
    double* pb = pa + h * w;
    for (int64_t i = 0; i < h * w; ++i) {
        pa[i] = a[i * c];
        pb[i] = b[i * c];
    }
    std::vector<double> rows(static_cast<size_t>(5 * w + 5 * ow));
    double* vx = rows.data();
    double* vy = vx + w;
    double* vxx = vy + w;
    double* vyy = vxx + w;
    double* vxy = vyy + w;
    double* ux = vxy + w;
    double* uy = ux + ow;
    double* uxx = uy + ow;
    double* uyy = uxx + ow;
    double* uxy = uyy + ow;
    double total = 0.0;
    for (int64_t y = 0; y < oh; ++y) {
        // Vertical: four columns at a time, the five sums kept in registers.
        int64_t x = 0;
        for (; x + 4 <= w; x += 4) {
            d4 sx = {}, sy = {}, sxx = {}, syy = {}, sxy = {};
            for (int t = 0; t < kTaps; ++t) {
                const double gt = g[t];
                const d4 p = load4(pa + (y + t) * w + x), q = load4(pb + (y + t) * w + x);
                sx += gt * p;
                sy += gt * q;
                sxx += gt * (p * p);
                syy += gt * (q * q);
                sxy += gt * (p * q);
            }
            store4(vx + x, sx), store4(vy + x, sy), store4(vxx + x, sxx);
            store4(vyy + x, syy), store4(vxy + x, sxy);
        }
        for (; x < w; ++x) {
            double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
            for (int t = 0; t < kTaps; ++t) {
                const double gt = g[t];
                const double p = pa[(y + t) * w + x], q = pb[(y + t) * w + x];
                sx += gt * p;
                sy += gt * q;
                sxx += gt * (p * p);
                syy += gt * (q * q);
                sxy += gt * (p * q);
            }
            vx[x] = sx, vy[x] = sy, vxx[x] = sxx, vyy[x] = syy, vxy[x] = sxy;
        }
        // Horizontal, the same way.
        for (x = 0; x + 4 <= ow; x += 4) {
            d4 sx = {}, sy = {}, sxx = {}, syy = {}, sxy = {};
            for (int t = 0; t < kTaps; ++t) {
                const double gt = g[t];
                sx += gt * load4(vx + x + t);
                sy += gt * load4(vy + x + t);
                sxx += gt * load4(vxx + x + t);
                syy += gt * load4(vyy + x + t);
                sxy += gt * load4(vxy + x + t);
            }
            store4(ux + x, sx), store4(uy + x, sy), store4(uxx + x, sxx);
            store4(uyy + x, syy), store4(uxy + x, sxy);
        }
        for (; x < ow; ++x) {
            double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
            for (int t = 0; t < kTaps; ++t) {
                const double gt = g[t];
                sx += gt * vx[x + t];
                sy += gt * vy[x + t];
                sxx += gt * vxx[x + t];
                syy += gt * vyy[x + t];
                sxy += gt * vxy[x + t];
            }
            ux[x] = sx, uy[x] = sy, uxx[x] = sxx, uyy[x] = syy, uxy[x] = sxy;
        }
        double row_sum = 0.0;
        for (int64_t x = 0; x < ow; ++x) {
            const double mx = ux[x], my = uy[x];
            const double var_x = uxx[x] - mx * mx;
            const double var_y = uyy[x] - my * my;
            const double cov = uxy[x] - mx * my;
            const double a1 = 2 * mx * my + kC1, a2 = 2 * cov + kC2;
            const double b1 = mx * mx + my * my + kC1, b2 = var_x + var_y + kC2;
            row_sum += (a1 * a2) / (b1 * b2);
        }
        total += row_sum;
    }
    return total / static_cast<double>(oh * ow);
}

}  // namespace

double ssim_frame(const uint8_t* a, const uint8_t* b, int64_t h, int64_t w, int64_t c) {
    double sum = 0.0;
    for (int64_t ch = 0; ch < c; ++ch) sum += ssim_channel(a + ch, b + ch, h, w, c);
    return sum / static_cast<double>(c);
}

double psnr_frame(const uint8_t* a, const uint8_t* b, int64_t count) {
    // Integer sum of squares: exact, and no uint8 wrap-around.
    int64_t sse = 0;
    for (int64_t i = 0; i < count; ++i) {
        const int64_t d = static_cast<int64_t>(a[i]) - static_cast<int64_t>(b[i]);
        sse += d * d;
    }
    if (sse == 0) return std::numeric_limits<double>::infinity();
    const double mse = static_cast<double>(sse) / static_cast<double>(count);
    return 10.0 * std::log10((255.0 * 255.0) / mse);
}

}  // namespace lipleak
