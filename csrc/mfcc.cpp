#include "mfcc.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace lipleak {
namespace {

constexpr int kNfft = 512;
constexpr int kBins = kNfft / 2 + 1;
constexpr int kNfilt = 26;
constexpr double kPreemph = 0.97;
constexpr double kCepLifter = 22.0;
const double kPi = std::acos(-1.0);

// psf's round_half_up(Decimal(x)) for x >= 0: the fractional part of a double is exact.
int64_t round_half_up(double x) {
    const double f = std::floor(x);
    return static_cast<int64_t>(f) + ((x - f) >= 0.5 ? 1 : 0);
}

int64_t frame_len(int sr) { return round_half_up(0.025 * sr); }
int64_t frame_step(int sr) { return round_half_up(0.01 * sr); }

// In-place iterative radix-2 FFT of 512 points on split real/imaginary arrays (plain
// doubles vectorise; std::complex temporaries did not). Twiddles come from std::cos/sin of
// each angle, not a recurrence, so the error stays at a few ulps of the largest bin.
class Fft512 {
  public:
    Fft512() {
        for (int k = 0; k < kNfft / 2; ++k) {
            const double a = -2.0 * kPi * k / kNfft;
            cos_[k] = std::cos(a);
            sin_[k] = std::sin(a);
        }
        for (int i = 0, j = 0; i < kNfft; ++i) {
            rev_[i] = j;
            int bit = kNfft >> 1;
            for (; j & bit; bit >>= 1) j ^= bit;
            j |= bit;
        }
    }
    // re: the real input (imaginary part zero); on return re/im hold the spectrum.
    void operator()(double* re, double* im) const {
        for (int i = 0; i < kNfft; ++i) {
            im[i] = 0.0;
            if (i < rev_[i]) std::swap(re[i], re[rev_[i]]);
        }
        for (int len = 2; len <= kNfft; len <<= 1) {
            const int half = len / 2, step = kNfft / len;
            for (int i = 0; i < kNfft; i += len) {
                double* ar = re + i;
                double* ai = im + i;
                double* br = re + i + half;
                double* bi = im + i + half;
                for (int j = 0; j < half; ++j) {
                    const double wr = cos_[j * step], wi = sin_[j * step];
                    const double vr = wr * br[j] - wi * bi[j];
                    const double vi = wr * bi[j] + wi * br[j];
                    const double ur = ar[j], ui = ai[j];
                    ar[j] = ur + vr;
                    ai[j] = ui + vi;
                    br[j] = ur - vr;
                    bi[j] = ui - vi;
                }
            }
        }
    }

  private:
    std::array<double, kNfft / 2> cos_{}, sin_{};
    std::array<int, kNfft> rev_{};
};

double hz2mel(double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); }
double mel2hz(double mel) { return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0); }

// psf.get_filterbanks(26, 512, sr, 0, sr/2): dense rows of kBins weights, plus each row's
// nonzero range [lo, hi) so the products skip the zeros (adding zeros changes no sum).
struct Filterbank {
    std::vector<double> w;
    std::array<int, kNfilt> lo{}, hi{};
};

Filterbank filterbank(int sr) {
    const double lowmel = hz2mel(0.0), highmel = hz2mel(sr / 2.0);
    // numpy.linspace: start + i * step, last point exactly the stop value.
    const double step = (highmel - lowmel) / (kNfilt + 1);
    std::array<double, kNfilt + 2> bin{};
    for (int i = 0; i < kNfilt + 2; ++i) {
        const double mel = (i == kNfilt + 1) ? highmel : i * step + lowmel;
        bin[i] = std::floor((kNfft + 1) * mel2hz(mel) / sr);
    }
    Filterbank fb;
    fb.w.assign(static_cast<size_t>(kNfilt) * kBins, 0.0);
    for (int j = 0; j < kNfilt; ++j) {
        double* row = fb.w.data() + static_cast<size_t>(j) * kBins;
        fb.lo[j] = std::min(static_cast<int>(bin[j]), kBins);
        fb.hi[j] = std::min(std::max(static_cast<int>(bin[j + 2]), fb.lo[j]), kBins);
        for (int i = static_cast<int>(bin[j]); i < static_cast<int>(bin[j + 1]); ++i)
            row[i] = (i - bin[j]) / (bin[j + 1] - bin[j]);
        for (int i = static_cast<int>(bin[j + 1]); i < static_cast<int>(bin[j + 2]); ++i)
            row[i] = (bin[j + 2] - i) / (bin[j + 2] - bin[j + 1]);
    }
    return fb;
}

// scipy.fftpack.dct(type=2, norm='ortho') rows 0..12, with the lifter folded in.
std::array<double, kNumCep * kNfilt> dct_lifter() {
    std::array<double, kNumCep * kNfilt> m{};
    for (int k = 0; k < kNumCep; ++k) {
        const double scale = 2.0 * std::sqrt(1.0 / ((k == 0 ? 4.0 : 2.0) * kNfilt));
        const double lift = 1.0 + (kCepLifter / 2.0) * std::sin(kPi * k / kCepLifter);
        for (int n = 0; n < kNfilt; ++n)
            m[k * kNfilt + n] = lift * scale * std::cos(kPi * k * (2 * n + 1) / (2.0 * kNfilt));
    }
    return m;
}

}  // namespace

int64_t mfcc_step(int samplerate) { return frame_step(samplerate); }

int64_t mfcc_frames(int64_t n, int samplerate) {
    const int64_t len = frame_len(samplerate), step = frame_step(samplerate);
    if (n <= len) return 1;
    return 1 + (n - len + step - 1) / step;
}

void mfcc(const int16_t* signal, int64_t n, int samplerate, double* out) {
    mfcc_range(signal, n, samplerate, 0, 0, mfcc_frames(n, samplerate), out);
}

void mfcc_range(const int16_t* signal, int64_t n, int samplerate, int64_t base, int64_t first,
                int64_t count, double* out) {
    static const Fft512 fft;
    static const auto dct = dct_lifter();
    const Filterbank fb = filterbank(samplerate);
    const double eps = std::numeric_limits<double>::epsilon();
    const int64_t len = frame_len(samplerate), step = frame_step(samplerate);
    // numpy.fft.rfft(frame, 512) zero-pads a shorter frame and truncates a longer one.
    const int64_t used = std::min<int64_t>(len, kNfft);

    // Frames are independent; threads only pay off on long signals (a minute and up).
#pragma omp parallel for schedule(static) if (count > 6000)
    for (int64_t i = 0; i < count; ++i) {
        std::array<double, kNfft> re{}, im{};
        std::array<double, kBins> pspec{};
        std::array<double, kNfilt> logfb{};
        const int64_t start = (first + i) * step - base;  // index into signal
        for (int64_t k = 0; k < kNfft; ++k) {
            const int64_t p = start + k;
            double v = 0.0;  // samples past the signal end are zero padding
            if (k < used && p < n) {
                v = static_cast<double>(signal[p]);
                if (base + p > 0) v -= kPreemph * static_cast<double>(signal[p - 1]);
            }
            re[static_cast<size_t>(k)] = v;
        }
        fft(re.data(), im.data());
        double energy = 0.0;
        for (int k = 0; k < kBins; ++k) {
            pspec[k] = (re[k] * re[k] + im[k] * im[k]) / kNfft;
            energy += pspec[k];
        }
        for (int j = 0; j < kNfilt; ++j) {
            const double* row = fb.w.data() + static_cast<size_t>(j) * kBins;
            double e = 0.0;
            for (int k = fb.lo[j]; k < fb.hi[j]; ++k) e += pspec[k] * row[k];
            logfb[j] = std::log(e == 0.0 ? eps : e);
        }
        double* o = out + i * kNumCep;
        for (int k = 0; k < kNumCep; ++k) {
            double c = 0.0;
            for (int j = 0; j < kNfilt; ++j) c += dct[k * kNfilt + j] * logfb[j];
            o[k] = c;
        }
        o[0] = std::log(energy == 0.0 ? eps : energy);
    }
}

}  // namespace lipleak
