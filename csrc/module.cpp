// Python bindings of lipleak._core: plain functions over numpy buffers, no state. Every
// input is checked here, with the GIL held, so that bad input is a ValueError/TypeError
// and the numeric code (offset.cpp, mfcc.cpp, quality.cpp) can trust its arguments.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "mfcc.hpp"
#include "offset.hpp"
#include "quality.hpp"

namespace py = pybind11;
using lipleak::SyncStats;

namespace {

constexpr int64_t kMaxVshift = 100000;
constexpr int64_t kMaxOutput = int64_t{1} << 28;  // entries of a distance matrix (2 GiB)

[[noreturn]] void fail(const std::string& msg) { throw py::value_error(msg); }

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// The object as a C-contiguous array of exactly dtype T (never a silent dtype conversion;
// a strided view is copied) with the given number of dimensions.
template <typename T>
py::array_t<T, py::array::c_style> checked(const py::object& obj, const char* name,
                                           const char* tname, int ndim_lo, int ndim_hi) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(name) + " must be a numpy array, got " +
                             py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
    auto arr = py::reinterpret_borrow<py::array>(obj);
    if (!arr.dtype().equal(py::dtype::of<T>()))
        fail(std::string(name) + " must have dtype " + tname + ", got " + dtype_name(arr));
    if (arr.ndim() < ndim_lo || arr.ndim() > ndim_hi) {
        const std::string want = ndim_lo == ndim_hi
                                     ? std::to_string(ndim_lo)
                                     : std::to_string(ndim_lo) + " or " + std::to_string(ndim_hi);
        fail(std::string(name) + " must be " + want + "-D, got " + std::to_string(arr.ndim()) +
             "-D");
    }
    auto out = py::array_t<T, py::array::c_style>::ensure(arr);
    if (!out) throw py::error_already_set();
    return out;
}

// The bits of T's exponent field: all set means inf or NaN.
template <typename T>
struct ExpBits;
template <>
struct ExpBits<float> {
    using U = uint32_t;
    static constexpr U mask = 0x7f800000u;
};
template <>
struct ExpBits<double> {
    using U = uint64_t;
    static constexpr U mask = 0x7ff0000000000000ull;
};

template <typename T>
void require_finite(const py::array_t<T, py::array::c_style>& a, const char* name) {
    // Integer tests on the exponent bits over blocks without an early exit, so that the
    // compiler vectorises them (a scalar isfinite loop costs a third of the offset search).
    using U = typename ExpBits<T>::U;
    constexpr U mask = ExpBits<T>::mask;
    constexpr py::ssize_t kBlock = 4096;
    const T* p = a.data();
    for (py::ssize_t i = 0, n = a.size(); i < n; i += kBlock) {
        const py::ssize_t e = std::min(n, i + kBlock);
        U bad = 0;
        for (py::ssize_t k = i; k < e; ++k) {
            U u;
            std::memcpy(&u, p + k, sizeof u);
            bad |= static_cast<U>((u & mask) == mask);
        }
        if (bad) fail(std::string(name) + " contains NaN or inf");
    }
}

void check_vshift(int64_t vshift) {
    if (vshift < 0 || vshift > kMaxVshift)
        fail("vshift must be in [0, " + std::to_string(kMaxVshift) + "], got " +
             std::to_string(vshift));
}

// An embedding matrix: float32, 2-D, at least one row and column, finite.
py::array_t<float, py::array::c_style> embeddings(const py::object& obj, const char* name) {
    auto a = checked<float>(obj, name, "float32", 2, 2);
    if (a.shape(0) < 1 || a.shape(1) < 1)
        fail(std::string(name) + " must have at least one row and one column, got shape (" +
             std::to_string(a.shape(0)) + ", " + std::to_string(a.shape(1)) + ")");
    require_finite(a, name);
    return a;
}

void check_pair(const py::array_t<float, py::array::c_style>& v,
                const py::array_t<float, py::array::c_style>& a, bool same_rows,
                const std::string& where) {
    if (v.shape(1) != a.shape(1))
        fail(where + "video and audio embeddings differ in width (" + std::to_string(v.shape(1)) +
             " vs " + std::to_string(a.shape(1)) + ")");
    if (same_rows && v.shape(0) != a.shape(0))
        fail(where + "video and audio need the same number of rows (" + std::to_string(v.shape(0)) +
             " vs " + std::to_string(a.shape(0)) + ")");
}

void check_output_size(int64_t n, int64_t vshift) {
    if (n * (2 * vshift + 1) > kMaxOutput)
        fail("distance matrix of " + std::to_string(n) + " x " + std::to_string(2 * vshift + 1) +
             " entries is too large; use fewer rows per call (row0) or a smaller vshift");
}

py::dict stats_dict(SyncStats&& st) {
    py::dict r;
    r["mdist"] = py::array_t<double>(static_cast<py::ssize_t>(st.mdist.size()), st.mdist.data());
    r["best"] = st.best;
    r["offset"] = st.offset;
    r["lse_d"] = st.lse_d;
    r["lse_c"] = st.lse_c;
    r["fconf"] = py::array_t<double>(static_cast<py::ssize_t>(st.fconf.size()), st.fconf.data());
    return r;
}

SyncStats search(const float* v, const float* a, int64_t n, int64_t d, int64_t vshift) {
    const int64_t S = 2 * vshift + 1;
    std::vector<double> dist(static_cast<size_t>(n * S));
    lipleak::shift_distances(v, n, a, n, d, vshift, 0, dist.data());
    return lipleak::sync_stats(dist.data(), n, S);
}

py::array_t<double> shift_distances_on(const py::object& video, const py::object& audio,
                                       int64_t vshift, int64_t row0, lipleak::OffsetIsa isa) {
    auto v = embeddings(video, "video");
    auto a = embeddings(audio, "audio");
    check_pair(v, a, false, "");
    check_vshift(vshift);
    if (row0 < 0 || row0 > (int64_t{1} << 40))
        fail("row0 must be >= 0, got " + std::to_string(row0));
    const int64_t n = v.shape(0), S = 2 * vshift + 1;
    check_output_size(n, vshift);
    py::array_t<double> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(S)});
    double* o = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        lipleak::shift_distances(v.data(), n, a.data(), a.shape(0), v.shape(1), vshift, row0, o,
                                 isa);
    }
    return out;
}

py::array_t<double> shift_distances(const py::object& video, const py::object& audio,
                                    int64_t vshift, int64_t row0) {
    return shift_distances_on(video, audio, vshift, row0, lipleak::OffsetIsa::Auto);
}

// shift_distances on a named copy of the SIMD kernel, for tests that all copies agree.
py::array_t<double> shift_distances_isa(const py::object& video, const py::object& audio,
                                        int64_t vshift, int64_t row0, const std::string& name) {
    using lipleak::OffsetIsa;
    OffsetIsa isa;
    if (name == "scalar")
        isa = OffsetIsa::Scalar;
    else if (name == "avx2")
        isa = OffsetIsa::Avx2;
    else if (name == "avx512")
        isa = OffsetIsa::Avx512;
    else
        fail("isa must be 'scalar', 'avx2' or 'avx512', got '" + name + "'");
    if (!lipleak::offset_isa_available(isa))
        fail("isa '" + name + "' is not available on this CPU");
    return shift_distances_on(video, audio, vshift, row0, isa);
}

py::dict sync_stats(const py::object& dobj) {
    auto d = checked<double>(dobj, "d", "float64", 2, 2);
    const int64_t n = d.shape(0), S = d.shape(1);
    if (n < 1) fail("d must have at least one row");
    if (S < 1 || S % 2 == 0)
        fail("d must have an odd number of columns (2*vshift+1), got " + std::to_string(S));
    require_finite(d, "d");
    SyncStats st;
    {
        py::gil_scoped_release nogil;
        st = lipleak::sync_stats(d.data(), n, S);
    }
    return stats_dict(std::move(st));
}

py::dict offset_search(const py::object& video, const py::object& audio, int64_t vshift) {
    auto v = embeddings(video, "video");
    auto a = embeddings(audio, "audio");
    check_pair(v, a, true, "");
    check_vshift(vshift);
    check_output_size(v.shape(0), vshift);
    SyncStats st;
    {
        py::gil_scoped_release nogil;
        st = search(v.data(), a.data(), v.shape(0), v.shape(1), vshift);
    }
    return stats_dict(std::move(st));
}

py::list offset_search_batch(const py::sequence& videos, const py::sequence& audios,
                             int64_t vshift) {
    if (py::len(videos) != py::len(audios))
        fail("videos and audios must be lists of the same length (" +
             std::to_string(py::len(videos)) + " vs " + std::to_string(py::len(audios)) + ")");
    check_vshift(vshift);
    const int64_t count = static_cast<int64_t>(py::len(videos));
    std::vector<py::array_t<float, py::array::c_style>> vs, as;
    for (int64_t k = 0; k < count; ++k) {
        const std::string where = "item " + std::to_string(k) + ": ";
        const std::string vn = where + "video", an = where + "audio";
        vs.push_back(embeddings(videos[static_cast<size_t>(k)], vn.c_str()));
        as.push_back(embeddings(audios[static_cast<size_t>(k)], an.c_str()));
        check_pair(vs.back(), as.back(), true, where);
        check_output_size(vs.back().shape(0), vshift);
    }
    struct Item {
        const float* v;
        const float* a;
        int64_t n, d;
    };
    std::vector<Item> items;
    for (int64_t k = 0; k < count; ++k)
        items.push_back({vs[k].data(), as[k].data(), vs[k].shape(0), vs[k].shape(1)});
    std::vector<SyncStats> res(static_cast<size_t>(count));
    bool failed = false;
    {
        py::gil_scoped_release nogil;
        // No exception may leave an OpenMP region (that would terminate the interpreter).
#pragma omp parallel for schedule(dynamic)
        for (int64_t k = 0; k < count; ++k) {
            try {
                const Item& it = items[static_cast<size_t>(k)];
                res[static_cast<size_t>(k)] = search(it.v, it.a, it.n, it.d, vshift);
            } catch (...) {
#pragma omp atomic write
                failed = true;
            }
        }
    }
    if (failed) throw std::bad_alloc();
    py::list out;
    for (auto& st : res) out.append(stats_dict(std::move(st)));
    return out;
}

py::array_t<double> mfcc(const py::object& signal, int64_t samplerate, int64_t first,
                         const py::object& count, int64_t base) {
    auto s = checked<int16_t>(signal, "signal", "int16", 1, 1);
    if (s.shape(0) < 1) fail("signal is empty");
    if (samplerate < 1000 || samplerate > 192000)
        fail("samplerate must be in [1000, 192000], got " + std::to_string(samplerate));
    const int sr = static_cast<int>(samplerate);
    // Bounded so that frame and sample indices cannot overflow int64 (2^40 samples is
    // two years of audio at 16 kHz).
    constexpr int64_t kMaxIndex = int64_t{1} << 40;
    if (base < 0 || base > kMaxIndex)
        fail("base must be in [0, 2^40], got " + std::to_string(base));
    if (first < 0 || first > kMaxIndex)
        fail("first must be in [0, 2^40], got " + std::to_string(first));
    const int64_t step = lipleak::mfcc_step(sr);
    const int64_t frames_left = lipleak::mfcc_frames(base + s.shape(0), sr) - first;
    int64_t n_out = std::max<int64_t>(frames_left, 0);
    if (!count.is_none()) {
        n_out = count.cast<int64_t>();
        if (n_out < 0 || n_out > kMaxOutput / lipleak::kNumCep)
            fail("count must be in [0, " + std::to_string(kMaxOutput / lipleak::kNumCep) +
                 "], got " + std::to_string(n_out));
    }
    const int64_t need = first * step > 0 ? first * step - 1 : 0;
    if (n_out > 0 && base > need)
        fail("signal starts at sample " + std::to_string(base) + ", after sample " +
             std::to_string(need) + " that frame " + std::to_string(first) + " needs");
    py::array_t<double> out({static_cast<py::ssize_t>(n_out), py::ssize_t{lipleak::kNumCep}});
    double* o = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        lipleak::mfcc_range(s.data(), s.shape(0), sr, base, first, n_out, o);
    }
    return out;
}

struct Frames {
    py::array_t<uint8_t, py::array::c_style> a, b;
    int64_t f, h, w, c;
};

Frames frame_pair(const py::object& aobj, const py::object& bobj, int64_t min_side) {
    auto a = checked<uint8_t>(aobj, "a", "uint8", 3, 4);
    auto b = checked<uint8_t>(bobj, "b", "uint8", 3, 4);
    if (a.ndim() != b.ndim()) fail("a and b differ in shape");
    for (py::ssize_t k = 0; k < a.ndim(); ++k)
        if (a.shape(k) != b.shape(k)) fail("a and b differ in shape");
    Frames fr{a, b, a.shape(0), a.shape(1), a.shape(2), a.ndim() == 4 ? a.shape(3) : 1};
    if (fr.f < 1) fail("no frames (first axis is empty)");
    if (fr.c < 1) fail("frames have no channels");
    if (fr.h < min_side || fr.w < min_side)
        fail("frames must be at least " + std::to_string(min_side) + "x" +
             std::to_string(min_side) + " pixels (F,H,W[,C]), got " + std::to_string(fr.h) + "x" +
             std::to_string(fr.w));
    return fr;
}

template <typename Fn>
py::array_t<double> per_frame(const Frames& fr, Fn fn) {
    py::array_t<double> out(static_cast<py::ssize_t>(fr.f));
    double* o = out.mutable_data();
    const uint8_t* a = fr.a.data();
    const uint8_t* b = fr.b.data();
    const int64_t step = fr.h * fr.w * fr.c;
    bool failed = false;
    {
        py::gil_scoped_release nogil;
#pragma omp parallel for schedule(dynamic) if (fr.f > 1)
        for (int64_t k = 0; k < fr.f; ++k) {
            try {
                o[k] = fn(a + k * step, b + k * step);
            } catch (...) {
#pragma omp atomic write
                failed = true;
            }
        }
    }
    if (failed) throw std::bad_alloc();
    return out;
}

py::array_t<double> ssim(const py::object& a, const py::object& b) {
    const Frames fr = frame_pair(a, b, 2 * lipleak::kSsimRadius + 1);
    return per_frame(fr, [&fr](const uint8_t* x, const uint8_t* y) {
        return lipleak::ssim_frame(x, y, fr.h, fr.w, fr.c);
    });
}

py::array_t<double> psnr(const py::object& a, const py::object& b) {
    const Frames fr = frame_pair(a, b, 1);
    const int64_t count = fr.h * fr.w * fr.c;
    return per_frame(fr, [count](const uint8_t* x, const uint8_t* y) {
        return lipleak::psnr_frame(x, y, count);
    });
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "lipleak-fast numeric core: SyncNet offset search, MFCC, SSIM/PSNR (SPEC §2, §4)";
    m.def("shift_distances", &shift_distances, py::arg("video"), py::arg("audio"),
          py::arg("vshift") = 15, py::arg("row0") = 0,
          "d[i, s] = ||video[i] - apad[row0 + i + s] + 1e-6||, apad = audio zero-padded by "
          "vshift rows on both sides; float64[N, 2*vshift+1].");
    m.def("_shift_distances_isa", &shift_distances_isa, py::arg("video"), py::arg("audio"),
          py::arg("vshift"), py::arg("row0"), py::arg("isa"),
          "shift_distances on the 'scalar', 'avx2' or 'avx512' kernel (ValueError where the "
          "CPU lacks it); for tests: every kernel gives the same bits.");
    m.def("sync_stats", &sync_stats, py::arg("d"),
          "mdist, best, offset, lse_d, lse_c, fconf of a distance matrix float64[N, S].");
    m.def("offset_search", &offset_search, py::arg("video"), py::arg("audio"),
          py::arg("vshift") = 15, "sync_stats(shift_distances(video, audio, vshift)).");
    m.def("offset_search_batch", &offset_search_batch, py::arg("videos"), py::arg("audios"),
          py::arg("vshift") = 15, "offset_search over lists of pairs, in parallel.");
    m.def("mfcc", &mfcc, py::arg("signal"), py::arg("samplerate") = 16000, py::kw_only(),
          py::arg("first") = 0, py::arg("count") = py::none(), py::arg("base") = 0,
          "python_speech_features.mfcc(signal, samplerate) of int16 samples; float64[T, 13]. "
          "first/count/base: frames first.. of a longer signal of which signal holds the "
          "samples from base on (streaming).");
    m.def("ssim", &ssim, py::arg("a"), py::arg("b"),
          "Per-frame SSIM of uint8[F,H,W(,C)] pairs (skimage, Gaussian 11x11); float64[F].");
    m.def("psnr", &psnr, py::arg("a"), py::arg("b"),
          "Per-frame PSNR of uint8[F,H,W(,C)] pairs; +inf for identical frames; float64[F].");
}
