// MFCC identical to python_speech_features.mfcc(signal, samplerate) with every default
// (SPEC §2): the audio features SyncNet's audio tower eats.
#pragma once

#include <cstdint>
#include <vector>

namespace lipleak {

constexpr int kNumCep = 13;

// Samples between the starts of consecutive frames (10 ms).
int64_t mfcc_step(int samplerate);

// Number of frames psf makes of n samples (n >= 1) at this sample rate.
int64_t mfcc_frames(int64_t n, int samplerate);

// Writes mfcc_frames(n, samplerate) x 13 values, row-major, into out.
void mfcc(const int16_t* signal, int64_t n, int samplerate, double* out);

// Frames [first, first + count) of the MFCC of a longer signal, of which signal[0..n) are
// the samples [base, base + n); samples past signal[n - 1] count as the signal's end (zero
// padding). Frames are computed exactly as mfcc() computes them, so a stream can be
// processed chunk by chunk. Needs base <= max(0, first * step - 1) (the pre-emphasis of a
// frame's first sample reads the sample before it).
void mfcc_range(const int16_t* signal, int64_t n, int samplerate, int64_t base, int64_t first,
                int64_t count, double* out);

}  // namespace lipleak
