// SchNet's continuous-filter convolution over half pairs, on a CPU, in one pass over the pairs.
//
// Built by molstrata/models/kernels.py on first use (a C++ compiler and OpenMP; no PyTorch
// headers) and called through ctypes with the data pointers of contiguous tensors.
//
// Pair p = (i, j) carries the filter w_p = f_p * c_p (c_p = 1 without a cutoff array) and
// sends messages both ways:
//   forward   out_i += h_j w_p,  out_j += h_i w_p
//   backward  grad_h_i += g_j w_p,  grad_h_j += g_i w_p,  grad_f_p = (g_i h_j + g_j h_i) c_p
// The pairs are read once, in order, and no (pairs x width) temporaries are written; the
// atom rows the pairs touch stay in the cache.
//
// Threads: the pairs of molecule m are pair_offsets[m] .. pair_offsets[m + 1] - 1 and touch
// only that molecule's atoms, so threads that take whole molecules never write the same row.
// Without molecule offsets (n_molecules = 0) one thread does all pairs.

#include <cstdint>

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

template <typename T>
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
            oj[k] += hi[k] * w;
        }
    }
}

template <typename T>
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
                oi[k] += gj[k] * w;
                oj[k] += gi[k] * w;
            }
        }
        if (grad_f) {
            T* of = grad_f + p * width;
#pragma GCC ivdep
            for (int64_t k = 0; k < width; ++k) of[k] = (gi[k] * hj[k] + gj[k] * hi[k]) * cp;
        }
    }
}

template <typename T>
void forward(const T* h, const T* f, const T* c, const int64_t* idx_i, const int64_t* idx_j,
             const int64_t* pair_offsets, int64_t n_molecules, int64_t n_pairs, int64_t width,
             int threads, T* out) {
    if (n_molecules <= 0 || threads <= 1) {
        forward_pairs(h, f, c, idx_i, idx_j, out, width, 0, n_pairs);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) {
        int64_t first, last;
        molecule_range(pair_offsets, n_molecules, t, threads, &first, &last);
        forward_pairs(h, f, c, idx_i, idx_j, out, width, pair_offsets[first],
                      pair_offsets[last]);
    }
}

template <typename T>
void backward(const T* g, const T* h, const T* f, const T* c, const int64_t* idx_i,
              const int64_t* idx_j, const int64_t* pair_offsets, int64_t n_molecules,
              int64_t n_pairs, int64_t width, int threads, T* grad_h, T* grad_f) {
    if (n_molecules <= 0 || threads <= 1) {
        backward_pairs(g, h, f, c, idx_i, idx_j, grad_h, grad_f, width, 0, n_pairs);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) {
        int64_t first, last;
        molecule_range(pair_offsets, n_molecules, t, threads, &first, &last);
        backward_pairs(g, h, f, c, idx_i, idx_j, grad_h, grad_f, width, pair_offsets[first],
                       pair_offsets[last]);
    }
}

}  // namespace

extern "C" {

int molstrata_kernels_version() { return 1; }

void half_pair_conv_f32(const float* h, const float* f, const float* c, const int64_t* idx_i,
                        const int64_t* idx_j, const int64_t* pair_offsets, int64_t n_molecules,
                        int64_t n_pairs, int64_t width, int threads, float* out) {
    forward(h, f, c, idx_i, idx_j, pair_offsets, n_molecules, n_pairs, width, threads, out);
}

void half_pair_conv_f64(const double* h, const double* f, const double* c,
                        const int64_t* idx_i, const int64_t* idx_j,
                        const int64_t* pair_offsets, int64_t n_molecules, int64_t n_pairs,
                        int64_t width, int threads, double* out) {
    forward(h, f, c, idx_i, idx_j, pair_offsets, n_molecules, n_pairs, width, threads, out);
}

void half_pair_conv_backward_f32(const float* g, const float* h, const float* f,
                                 const float* c, const int64_t* idx_i, const int64_t* idx_j,
                                 const int64_t* pair_offsets, int64_t n_molecules,
                                 int64_t n_pairs, int64_t width, int threads, float* grad_h,
                                 float* grad_f) {
    backward(g, h, f, c, idx_i, idx_j, pair_offsets, n_molecules, n_pairs, width, threads,
             grad_h, grad_f);
}

void half_pair_conv_backward_f64(const double* g, const double* h, const double* f,
                                 const double* c, const int64_t* idx_i, const int64_t* idx_j,
                                 const int64_t* pair_offsets, int64_t n_molecules,
                                 int64_t n_pairs, int64_t width, int threads, double* grad_h,
                                 double* grad_f) {
    backward(g, h, f, c, idx_i, idx_j, pair_offsets, n_molecules, n_pairs, width, threads,
             grad_h, grad_f);
}

}  // extern "C"
