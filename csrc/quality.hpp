// Per-frame SSIM and PSNR of uint8 images (SPEC §4).
#pragma once

#include <cstdint>

namespace lipleak {

constexpr int kSsimRadius = 5;  // int(3.5 * 1.5 + 0.5): the 11x11 Gaussian window

// skimage structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=
// False, data_range=255, channel_axis=-1) of one h x w x c interleaved frame pair
// (h, w >= 11): mean SSIM over the crop inside the filter radius, averaged over channels.
double ssim_frame(const uint8_t* a, const uint8_t* b, int64_t h, int64_t w, int64_t c);

// 10 log10(255^2 / MSE) over all values of one frame; +inf for identical frames.
double psnr_frame(const uint8_t* a, const uint8_t* b, int64_t count);

}  // namespace lipleak
