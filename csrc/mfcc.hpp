// MFCC identical to python_speech_features.mfcc(signal, samplerate) with every default
// (SPEC §2): the audio features SyncNet's audio tower eats.
#pragma once

#include <cstdint>
#include <vector>

namespace lipleak {

constexpr int kNumCep = 13;

// Number of frames psf makes of n samples (n >= 1) at this sample rate.
int64_t mfcc_frames(int64_t n, int samplerate);

// Writes mfcc_frames(n, samplerate) x 13 values, row-major, into out.
void mfcc(const int16_t* signal, int64_t n, int samplerate, double* out);

}  // namespace lipleak
