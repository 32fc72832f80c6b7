#include "quality.hpp"

#include <array>
#include <cmath>
#include <limits>
#include <vector>

namespace lipleak {
namespace {

constexpr int kTaps = 2 * kSsimRadius + 1;
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

// Mean SSIM of one channel. Only output pixels at least kSsimRadius from every edge are
// averaged, and their windows lie inside the image, so the filters' boundary mode never
// enters and the separable filter runs on in-bounds pixels only.
double ssim_channel(const uint8_t* a, const uint8_t* b, int64_t h, int64_t w, int64_t c) {
    static const std::array<double, kTaps> g = gaussian_taps();
    const int64_t oh = h - 2 * kSsimRadius, ow = w - 2 * kSsimRadius;
    // Vertical pass first (scipy filters axis 0 then axis 1): 5 moment planes, oh x w.
    std::vector<double> vm(static_cast<size_t>(5 * oh * w));
    double* vx = vm.data();
    double* vy = vx + oh * w;
    double* vxx = vy + oh * w;
    double* vyy = vxx + oh * w;
    double* vxy = vyy + oh * w;
    for (int64_t y = 0; y < oh; ++y) {
        for (int64_t x = 0; x < w; ++x) {
            double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
            for (int t = 0; t < kTaps; ++t) {
                const int64_t idx = ((y + t) * w + x) * c;
                const double p = a[idx], q = b[idx];
                sx += g[t] * p;
                sy += g[t] * q;
                sxx += g[t] * (p * p);
                syy += g[t] * (q * q);
                sxy += g[t] * (p * q);
            }
            const int64_t o = y * w + x;
            vx[o] = sx;
            vy[o] = sy;
            vxx[o] = sxx;
            vyy[o] = syy;
            vxy[o] = sxy;
        }
    }
    double total = 0.0;
    for (int64_t y = 0; y < oh; ++y) {
        double row_sum = 0.0;
        for (int64_t x = 0; x < ow; ++x) {
            double ux = 0, uy = 0, uxx = 0, uyy = 0, uxy = 0;
            const int64_t base = y * w + x;
            for (int t = 0; t < kTaps; ++t) {
                ux += g[t] * vx[base + t];
                uy += g[t] * vy[base + t];
                uxx += g[t] * vxx[base + t];
                uyy += g[t] * vyy[base + t];
                uxy += g[t] * vxy[base + t];
            }
            const double var_x = uxx - ux * ux;
            const double var_y = uyy - uy * uy;
            const double cov = uxy - ux * uy;
            const double a1 = 2 * ux * uy + kC1, a2 = 2 * cov + kC2;
            const double b1 = ux * ux + uy * uy + kC1, b2 = var_x + var_y + kC2;
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
