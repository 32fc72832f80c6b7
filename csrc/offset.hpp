// SyncNet offset search (SPEC §2): distances between video and shifted audio embeddings,
// and the statistics LSE-C / LSE-D / offset / per-frame confidence derived from them.
#pragma once

#include <cstdint>
#include <vector>

namespace lipleak {

// out[i*S + s] = || video[i] - apad[row0 + i + s] + 1e-6 ||_2 with S = 2*vshift+1 and apad
// = vshift zero rows, audio (m rows), zero rows for ever after. Rows are d floats long.
// Each (i, s) entry is computed the same way whatever the row range or thread count, so a
// chunked call (row0 > 0) reproduces the rows of a full call bit for bit.
void shift_distances(const float* video, int64_t n, const float* audio, int64_t m, int64_t d,
                     int64_t vshift, int64_t row0, double* out);

struct SyncStats {
    std::vector<double> mdist;  // mean over frames, one per shift
    int64_t best = 0;           // argmin of mdist, first index on ties
    int64_t offset = 0;         // vshift - best
    double lse_d = 0.0;         // min mdist
    double lse_c = 0.0;         // median(mdist) - min(mdist)
    std::vector<double> fconf;  // medfilt9(median(mdist) - d[i, best])
};

// d is n x s (s odd), row-major.
SyncStats sync_stats(const double* d, int64_t n, int64_t s);

}  // namespace lipleak
