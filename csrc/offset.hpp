// SyncNet offset search (SPEC §2): distances between video and shifted audio embeddings,
// and the statistics LSE-C / LSE-D / offset / per-frame confidence derived from them.
#pragma once

#include <cstdint>
#include <vector>

namespace lipleak {

// Copies of the float32 distance kernel. They give identical bits; Auto picks the fastest the
// CPU runs, the others exist so that tests can check that claim.
enum class OffsetIsa { Auto, Scalar, Avx2, Avx512 };

// Whether this build and CPU can run the given copy.
bool offset_isa_available(OffsetIsa isa);

// out[i*S + s] = || video[i] - apad[row0 + i + s] + 1e-6 ||_2 with S = 2*vshift+1 and apad
// = vshift zero rows, audio (m rows), zero rows for ever after. Rows are d floats long.
// Pairs with real audio rows are computed like torch's float32 pairwise_distance (difference,
// eps and squares in float32; float32 partial sums gathered in double; relative error
// below ~1e-6), pairs with padding or all-zero audio rows in double.
// Each (i, s) entry is computed the same way whatever the row range, thread count or ISA
// copy, so a chunked call (row0 > 0) reproduces the rows of a full call bit for bit.
// An ISA the CPU lacks falls back to Scalar.
void shift_distances(const float* video, int64_t n, const float* audio, int64_t m, int64_t d,
                     int64_t vshift, int64_t row0, double* out, OffsetIsa isa = OffsetIsa::Auto);

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
