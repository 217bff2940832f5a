// SchNet's hot spots on a CPU: the continuous-filter convolution over a batch's pairs, in one
// pass over the pairs, and a linear layer's bias with the softplus after it, in one pass over
// the layer's output (bias_softplus and its backward, further down).
//
// Built by molstrata/models/kernels.py on first use (a C++ compiler and OpenMP; no PyTorch
// headers) and called through ctypes with the data pointers of contiguous tensors.
//
// Pair p = (i, j) carries the filter w_p = f_p * c_p (c_p = 1 without a cutoff array) and
// sends the message j -> i; with both_ways (half pairs: each unordered pair once) also i -> j:
//   forward   out_i += h_j w_p                       [out_j += h_i w_p]
//   backward  grad_h_j += g_i w_p  [grad_h_i += g_j w_p],  grad_f_p = (g_i h_j [+ g_j h_i]) c_p
// The pairs are read once, in order, and no (pairs x width) temporaries are written; the
// atom rows the pairs touch stay in the cache.
//
// Threads: the pairs of molecule m are pair_offsets[m] .. pair_offsets[m + 1] - 1 and touch
// only that molecule's atoms (MessageSums checks it where a batch is built), so threads that
// take whole molecules never write the same row. Without molecule offsets (n_molecules = 0)
// one thread does all pairs.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// Thread t of `threads` takes molecules [first, last): about n_pairs * t / threads pairs in.
void molecule_range(const int64_t* pair_offsets, int64_t n_molecules, int t, int threads,
                    int64_t* first, int64_t* last) {
    auto boundary = [&](int k) -> int64_t {
        if (k == 0) return 0;
        if (k == threads) return n_molecules;
        const int64_t target = pair_offsets[n_molecules] * k / threads;
        int64_t lo = 0, hi = n_molecules;  // first molecule starting at or after target
        while (lo < hi) {
            const int64_t mid = (lo + hi) / 2;
            if (pair_offsets[mid] < target) lo = mid + 1; else hi = mid;
        }
        return lo;
    };
    *first = boundary(t);
    *last = boundary(t + 1);
}

// fn(p0, p1) over the pairs, split between threads by whole molecules.
template <typename F>
void over_molecules(const int64_t* pair_offsets, int64_t n_molecules, int64_t n_pairs,
                    int threads, F fn) {
    if (n_molecules <= 0 || threads <= 1) {
        fn(int64_t(0), n_pairs);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) {
        int64_t first, last;
        molecule_range(pair_offsets, n_molecules, t, threads, &first, &last);
        fn(pair_offsets[first], pair_offsets[last]);
    }
}

template <bool Both, typename T>
void forward_pairs(const T* h, const T* f, const T* c, const int64_t* idx_i,
                   const int64_t* idx_j, T* out, int64_t width, int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
        const T* fp = f + p * width;
        const T* hi = h + idx_i[p] * width;
        const T* hj = h + idx_j[p] * width;
        T* oi = out + idx_i[p] * width;
        T* oj = out + idx_j[p] * width;
        const T cp = c ? c[p] : T(1);
#pragma GCC ivdep
        for (int64_t k = 0; k < width; ++k) {
            const T w = fp[k] * cp;
            oi[k] += hj[k] * w;
            if (Both) oj[k] += hi[k] * w;
        }
    }
}

template <bool Both, typename T>
void backward_pairs(const T* g, const T* h, const T* f, const T* c, const int64_t* idx_i,
                    const int64_t* idx_j, T* grad_h, T* grad_f, int64_t width, int64_t p0,
                    int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
        const T* fp = f + p * width;
        const T* gi = g + idx_i[p] * width;
        const T* gj = g + idx_j[p] * width;
        const T* hi = h + idx_i[p] * width;
        const T* hj = h + idx_j[p] * width;
        const T cp = c ? c[p] : T(1);
        if (grad_h) {
            T* oi = grad_h + idx_i[p] * width;
            T* oj = grad_h + idx_j[p] * width;
#pragma GCC ivdep
            for (int64_t k = 0; k < width; ++k) {
                const T w = fp[k] * cp;
                if (Both) oi[k] += gj[k] * w;
                oj[k] += gi[k] * w;
            }
        }
        if (grad_f) {
            T* of = grad_f + p * width;
#pragma GCC ivdep
            for (int64_t k = 0; k < width; ++k)
                of[k] = (Both ? gi[k] * hj[k] + gj[k] * hi[k] : gi[k] * hj[k]) * cp;
        }
    }
}

template <typename T>
void pair_conv(const T* h, const T* f, const T* c, const int64_t* idx_i, const int64_t* idx_j,
               const int64_t* pair_offsets, int64_t n_molecules, int64_t n_pairs, int64_t width,
               int both_ways, int threads, T* out) {
    over_molecules(pair_offsets, n_molecules, n_pairs, threads, [=](int64_t p0, int64_t p1) {
        if (both_ways) forward_pairs<true>(h, f, c, idx_i, idx_j, out, width, p0, p1);
        else forward_pairs<false>(h, f, c, idx_i, idx_j, out, width, p0, p1);
    });
}

template <typename T>
void pair_conv_backward(const T* g, const T* h, const T* f, const T* c, const int64_t* idx_i,
                        const int64_t* idx_j, const int64_t* pair_offsets, int64_t n_molecules,
                        int64_t n_pairs, int64_t width, int both_ways, int threads, T* grad_h,
                        T* grad_f) {
    over_molecules(pair_offsets, n_molecules, n_pairs, threads, [=](int64_t p0, int64_t p1) {
        if (both_ways)
            backward_pairs<true>(g, h, f, c, idx_i, idx_j, grad_h, grad_f, width, p0, p1);
        else
            backward_pairs<false>(g, h, f, c, idx_i, idx_j, grad_h, grad_f, width, p0, p1);
    });
}

// float32: exp(x) for x in [-87, 0], written to vectorise (no calls into libm): x = n ln 2 + r with
// |r| <= ln 2 / 2, exp(r) by a degree-7 polynomial, 2^n from the exponent bits.
inline float exp_nonpositive(float x) {
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln 2)
    const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
    float two_to_n;  // 2^n from its exponent bits (memcpy: the portable bit cast)
    std::memcpy(&two_to_n, &bits, sizeof two_to_n);
    return p * two_to_n;
}

// softplus(x) = max(x, 0) + log1p(exp(-|x|)): log1p(u) for u in (0, 1] as 2 atanh(u / (2 + u))
// by its series to t^13. x > 20 gives x, as torch.nn.functional.softplus does; x < -87 gives 0
// (the exact value is below float32's smallest normal number).
inline float softplus(float x) {
    const float magnitude = x < 0 ? -x : x;
    const float u = exp_nonpositive(magnitude < 87.0f ? -magnitude : -87.0f);
    const float t = u / (2.0f + u);
    const float t2 = t * t;
    float q = 1.0f / 13.0f;
    q = q * t2 + 1.0f / 11.0f;
    q = q * t2 + 1.0f / 9.0f;
    q = q * t2 + 1.0f / 7.0f;
    q = q * t2 + 1.0f / 5.0f;
    q = q * t2 + 1.0f / 3.0f;
    q = q * t2 + 1.0f;
    const float y = (x > 0 ? x : 0.0f) + 2.0f * t * q;
    return x > 20.0f ? x : x < -87.0f ? 0.0f : y;
}

// softplus'(x) = sigmoid(x) = 1 - exp(-softplus(x)) = -expm1(-s), from s = softplus(x) >= 0:
// for s < 1/2 by the series of expm1 (no cancellation), else 1 - exp(-s).
inline float softplus_slope(float s) {
    float p = 1.0f / 3628800.0f;  // 1/10!
    p = p * -s + 1.0f / 362880.0f;
    p = p * -s + 1.0f / 40320.0f;
    p = p * -s + 1.0f / 5040.0f;
    p = p * -s + 1.0f / 720.0f;
    p = p * -s + 1.0f / 120.0f;
    p = p * -s + 1.0f / 24.0f;
    p = p * -s + 1.0f / 6.0f;
    p = p * -s + 0.5f;
    p = p * -s + 1.0f;
    const float small = s * p;  // -expm1(-s) = s - s^2/2 + s^3/6 - ...
    const float large = 1.0f - exp_nonpositive(s < 87.0f ? -s : -87.0f);
    return s < 0.5f ? small : large;
}

// In float64 (the precision the gradients are checked in) from libm: softplus(x) =
// max(x, 0) + log1p(exp(-|x|)), x > 20 giving x as PyTorch does; its slope -expm1(-s).
inline double softplus(double x) {
    return x > 20.0 ? x : (x > 0 ? x : 0.0) + std::log1p(std::exp(-std::fabs(x)));
}

inline double softplus_slope(double s) { return -std::expm1(-s); }

template <typename F>
void rows_in_parallel(int64_t rows, int64_t width, int threads, F fn) {
    if (threads <= 1 || rows * width < (1 << 16)) {  // too small to share
        fn(0, 0, rows);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) fn(t, rows * t / threads, rows * (t + 1) / threads);
}

// s = softplus(z + b), b added to every row of z (rows x width): a linear layer's bias and
// its activation in one pass over its output. The rows are walked as one flat array, 16 rows
// (a multiple of any vector's length) at a time with b repeated 16 times, so that no width
// leaves a scalar remainder in every row.
template <typename T>
void bias_softplus(const T* z, const T* b, T* s, int64_t rows, int64_t width, int threads) {
    rows_in_parallel(rows, width, threads, [=](int, int64_t r0, int64_t r1) {
        const int64_t block = 16 * width, n = (r1 - r0) * width;
        std::vector<T> tiled(block);
        for (int64_t k = 0; k < block; ++k) tiled[k] = b[k % width];
        const T* bt = tiled.data();
        const T* zp = z + r0 * width;
        T* sp = s + r0 * width;
        for (int64_t i = 0; i < n; i += block) {
            const int64_t m = n - i < block ? n - i : block;
#pragma GCC ivdep
            for (int64_t k = 0; k < m; ++k) sp[i + k] = softplus(zp[i + k] + bt[k]);
        }
    });
}

// grad_z = grad_s * softplus'(z), from s = softplus(z); grad_b (threads x width, zeroed):
// thread t adds its rows' grad_z to row t. Walked as bias_softplus walks its rows.
template <typename T>
void bias_softplus_backward(const T* grad_s, const T* s, T* grad_z, T* grad_b, int64_t rows,
                            int64_t width, int threads) {
    rows_in_parallel(rows, width, threads, [=](int t, int64_t r0, int64_t r1) {
        const int64_t block = 16 * width, n = (r1 - r0) * width;
        std::vector<T> sums(block, T(0));
        T* acc = sums.data();
        const T* gp = grad_s + r0 * width;
        const T* sp = s + r0 * width;
        T* out = grad_z + r0 * width;
        for (int64_t i = 0; i < n; i += block) {
            const int64_t m = n - i < block ? n - i : block;
#pragma GCC ivdep
            for (int64_t k = 0; k < m; ++k) {
                out[i + k] = gp[i + k] * softplus_slope(sp[i + k]);
                acc[k] += out[i + k];
            }
        }
        T* gb = grad_b + t * width;
        for (int64_t k = 0; k < block; ++k) gb[k % width] += acc[k];
    });
}

}  // namespace

extern "C" {

int molstrata_kernels_version() { return 3; }

// The entry points for one element type T, named with suffix S (f32, f64).
#define MOLSTRATA_KERNELS(T, S)                                                             \
    void pair_conv_##S(const T* h, const T* f, const T* c, const int64_t* idx_i,          \
                       const int64_t* idx_j, const int64_t* pair_offsets,                 \
                       int64_t n_molecules, int64_t n_pairs, int64_t width, int both_ways, \
                       int threads, T* out) {                                             \
        pair_conv(h, f, c, idx_i, idx_j, pair_offsets, n_molecules, n_pairs, width,       \
                  both_ways, threads, out);                                               \
    }                                                                                     \
    void pair_conv_backward_##S(const T* g, const T* h, const T* f, const T* c,           \
                                const int64_t* idx_i, const int64_t* idx_j,               \
                                const int64_t* pair_offsets, int64_t n_molecules,         \
                                int64_t n_pairs, int64_t width, int both_ways,            \
                                int threads, T* grad_h, T* grad_f) {                      \
        pair_conv_backward(g, h, f, c, idx_i, idx_j, pair_offsets, n_molecules, n_pairs,  \
                           width, both_ways, threads, grad_h, grad_f);                    \
    }                                                                                     \
    void bias_softplus_##S(const T* z, const T* b, T* s, int64_t rows, int64_t width,     \
                           int threads) {                                                 \
        bias_softplus(z, b, s, rows, width, threads);                                     \
    }                                                                                     \
    void bias_softplus_backward_##S(const T* grad_s, const T* s, T* grad_z, T* grad_b,    \
                                    int64_t rows, int64_t width, int threads) {           \
        bias_softplus_backward(grad_s, s, grad_z, grad_b, rows, width, threads);          \
    }

MOLSTRATA_KERNELS(float, f32)
MOLSTRATA_KERNELS(double, f64)

}  // extern "C"
