// SchNet's and PaiNN's hot spots on a CPU: the continuous-filter convolution over a batch's
// pairs, in one pass over the pairs, PaiNN's interaction messages likewise (painn_messages),
// and a linear layer's bias with the softplus after it, in one pass over the layer's output
// (bias_softplus and its backward, further down).
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
#include <type_traits>
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

// PaiNN's interaction block (painn_messages and its backward), its filter network included.
// Pair p = (i, j) carries the filter w_p = f_p c_p of 3F entries (w_q, w_R, w_mu), where
// f_p = W e_p + b is the block's rows of PaiNN's filter network (W: 3F x n_rbf, given
// transposed, Wt) applied to the pair's radial basis e_p, c_p its cosine cutoff, and the
// direction d_p = r̂_ij; it sends the message j -> i, and with both_ways (half pairs) also
// i -> j, with the same filter and direction -d_p. With x = (x_q, x_R, x_mu) the atoms' context
// (n_atoms x 3F) and mu their vector features (n_atoms x 3 x F; none before the first block),
// the message j -> i adds
//   dq_i += x_q,j w_q          dmu_i,c += a d_c + b mu_j,c,   a = x_R,j w_R,  b = x_mu,j w_mu
// and its backward, with g = (g_q, g_mu) the gradients of dq and dmu at i, G_a = sum_c g_c d_c
// and G_b = sum_c g_c mu_j,c:
//   grad_x_j += (g_q w_q, G_a w_R, G_b w_mu)      grad_mu_j,c += g_c b
//   grad_w_p += (g_q x_q,j, G_a x_R,j, G_b x_mu,j)          grad_d_p,c += sum_k g_c a
// (i -> j the same with i and j swapped and d_p negated), then grad_f_p = grad_w_p c_p,
// grad_W += grad_f_p e_p^T, grad_b += grad_f_p, and where forces need them grad_e_p =
// W^T grad_f_p and grad_c_p = grad_w_p . f_p. The filters are recomputed from e_p as each
// pair is read, forward and backward, so no (pairs x 3F) array is ever allocated or written
// (n_rbf products per entry, against a pass through memory and its page faults).
//
// The gradients of W and b sum over all pairs. So that their bits do not depend on the number
// of threads, each chunk of CHUNK molecules sums its pairs' terms in its own array, whichever
// thread takes it, and the chunks' arrays are added in order afterwards.
constexpr int64_t CHUNK = 4;

// f = W e + b for one pair: e (n_rbf), Wt (n_rbf x n), b (n) -> f (n).
template <typename T>
inline void pair_filter(const T* e, const T* wt, const T* b, int64_t n_rbf, int64_t n, T* f) {
    for (int64_t k = 0; k < n; ++k) f[k] = b[k];
    for (int64_t r = 0; r < n_rbf; ++r) {
        const T er = e[r];
        const T* wr = wt + r * n;
#pragma GCC ivdep
        for (int64_t k = 0; k < n; ++k) f[k] += er * wr[k];
    }
}

// gwt += E^T G and gb += the sum of G's rows, for the `count` pairs whose radial bases are the
// rows of E (count x n_rbf) and filter gradients the rows of G (count x n): the pairs' terms
// of grad_W^T and grad_b, added BLOCK pairs at a time.
constexpr int64_t BLOCK = 16;

template <typename T>
inline void add_filter_gradients(const T* es, const T* gs, int64_t count, int64_t n_rbf,
                                 int64_t n, T* gwt, T* gb) {
    for (int64_t m = 0; m < count; ++m) {
        const T* g = gs + m * n;
#pragma GCC ivdep
        for (int64_t k = 0; k < n; ++k) gb[k] += g[k];
        for (int64_t r = 0; r < n_rbf; ++r) {
            const T em = es[m * n_rbf + r];
            T* gr = gwt + r * n;
#pragma GCC ivdep
            for (int64_t k = 0; k < n; ++k) gr[k] += em * g[k];
        }
    }
}

template <bool Both, bool Mu, typename T>
void painn_forward_pairs(const T* x, const T* mu, const T* e, const T* wt, const T* b,
                         int64_t n_rbf, const T* c, const T* d, const int64_t* idx_i,
                         const int64_t* idx_j, T* dq, T* dmu, int64_t width, int64_t p0,
                         int64_t p1) {
    const int64_t F = width;
    std::vector<T> filter(3 * F);
    T* fp = filter.data();
    for (int64_t p = p0; p < p1; ++p) {
        const int64_t i = idx_i[p], j = idx_j[p];
        pair_filter(e + p * n_rbf, wt, b, n_rbf, 3 * F, fp);
        const T cp = c ? c[p] : T(1);
        const T d0 = d[3 * p], d1 = d[3 * p + 1], d2 = d[3 * p + 2];
        const T* xi = x + i * 3 * F;
        const T* xj = x + j * 3 * F;
        const T* mi = Mu ? mu + i * 3 * F : nullptr;
        const T* mj = Mu ? mu + j * 3 * F : nullptr;
        T* qi = dq + i * F;
        T* qj = dq + j * F;
        T* vi = dmu + i * 3 * F;
        T* vj = dmu + j * 3 * F;
#pragma GCC ivdep
        for (int64_t k = 0; k < F; ++k) {
            const T wq = fp[k] * cp, wr = fp[F + k] * cp, wm = fp[2 * F + k] * cp;
            const T a = xj[F + k] * wr;
            qi[k] += xj[k] * wq;
            if (Mu) {
                const T bm = xj[2 * F + k] * wm;
                vi[k] += a * d0 + bm * mj[k];
                vi[F + k] += a * d1 + bm * mj[F + k];
                vi[2 * F + k] += a * d2 + bm * mj[2 * F + k];
            } else {
                vi[k] += a * d0;
                vi[F + k] += a * d1;
                vi[2 * F + k] += a * d2;
            }
            if (Both) {
                const T ar = xi[F + k] * wr;
                qj[k] += xi[k] * wq;
                if (Mu) {
                    const T br = xi[2 * F + k] * wm;
                    vj[k] += br * mi[k] - ar * d0;
                    vj[F + k] += br * mi[F + k] - ar * d1;
                    vj[2 * F + k] += br * mi[2 * F + k] - ar * d2;
                } else {
                    vj[k] -= ar * d0;
                    vj[F + k] -= ar * d1;
                    vj[2 * F + k] -= ar * d2;
                }
            }
        }
    }
}

// The backward over pairs p0 .. p1 - 1 (one chunk): grad_x, grad_mu added to; the chunk's
// sums of grad_W (transposed, n_rbf x 3F) and grad_b (3F) added to gwt, gb; with Geometry
// grad_e, grad_c (if c) and grad_d written.
template <bool Both, bool Mu, bool Geometry, typename T>
void painn_backward_pairs(const T* gq, const T* gmu, const T* x, const T* mu, const T* e,
                          const T* wt, const T* b, int64_t n_rbf, const T* c, const T* d,
                          const int64_t* idx_i, const int64_t* idx_j, T* grad_x, T* grad_mu,
                          T* gwt, T* gb, T* grad_e, T* grad_c, T* grad_d, int64_t width,
                          int64_t p0, int64_t p1) {
    const int64_t F = width;
    std::vector<T> scratch(3 * F + BLOCK * 3 * F);
    T* fp = scratch.data();        // the pair's filter f_p, before the cutoff
    T* gs = fp + 3 * F;            // the gradients of the last BLOCK pairs' f_p
    for (int64_t p = p0; p < p1; ++p) {
        const int64_t i = idx_i[p], j = idx_j[p];
        T* gf = gs + ((p - p0) % BLOCK) * 3 * F;  // the gradient of f_p
        const T* ep = e + p * n_rbf;
        pair_filter(ep, wt, b, n_rbf, 3 * F, fp);
        const T cp = c ? c[p] : T(1);
        const T d0 = d[3 * p], d1 = d[3 * p + 1], d2 = d[3 * p + 2];
        const T* xi = x + i * 3 * F;
        const T* xj = x + j * 3 * F;
        const T* mi = Mu ? mu + i * 3 * F : nullptr;
        const T* mj = Mu ? mu + j * 3 * F : nullptr;
        const T* gqi = gq + i * F;
        const T* gqj = gq + j * F;
        const T* gi = gmu + i * 3 * F;
        const T* gj = gmu + j * 3 * F;
        T* xgi = grad_x + i * 3 * F;
        T* xgj = grad_x + j * 3 * F;
        T* mgi = Mu ? grad_mu + i * 3 * F : nullptr;
        T* mgj = Mu ? grad_mu + j * 3 * F : nullptr;
        T s0 = 0, s1 = 0, s2 = 0, sc = 0;
#pragma omp simd reduction(+ : s0, s1, s2, sc)
        for (int64_t k = 0; k < F; ++k) {
            const T wq = fp[k] * cp, wr = fp[F + k] * cp, wm = fp[2 * F + k] * cp;
            const T g0 = gi[k], g1 = gi[F + k], g2 = gi[2 * F + k];
            const T ga = g0 * d0 + g1 * d1 + g2 * d2;  // j -> i
            T fq = gqi[k] * xj[k], fr = ga * xj[F + k], fm = 0;
            xgj[k] += gqi[k] * wq;
            xgj[F + k] += ga * wr;
            if (Mu) {
                const T gmix = g0 * mj[k] + g1 * mj[F + k] + g2 * mj[2 * F + k];
                const T bm = xj[2 * F + k] * wm;
                fm = gmix * xj[2 * F + k];
                xgj[2 * F + k] += gmix * wm;
                mgj[k] += g0 * bm;
                mgj[F + k] += g1 * bm;
                mgj[2 * F + k] += g2 * bm;
            }
            if (Geometry) {
                const T a = xj[F + k] * wr;
                s0 += g0 * a;
                s1 += g1 * a;
                s2 += g2 * a;
            }
            if (Both) {  // i -> j, direction -d
                const T h0 = gj[k], h1 = gj[F + k], h2 = gj[2 * F + k];
                const T ha = -(h0 * d0 + h1 * d1 + h2 * d2);
                fq += gqj[k] * xi[k];
                fr += ha * xi[F + k];
                xgi[k] += gqj[k] * wq;
                xgi[F + k] += ha * wr;
                if (Mu) {
                    const T hb = h0 * mi[k] + h1 * mi[F + k] + h2 * mi[2 * F + k];
                    const T bm = xi[2 * F + k] * wm;
                    fm += hb * xi[2 * F + k];
                    xgi[2 * F + k] += hb * wm;
                    mgi[k] += h0 * bm;
                    mgi[F + k] += h1 * bm;
                    mgi[2 * F + k] += h2 * bm;
                }
                if (Geometry) {
                    const T a = xi[F + k] * wr;
                    s0 -= h0 * a;
                    s1 -= h1 * a;
                    s2 -= h2 * a;
                }
            }
            if (Geometry) sc += fq * fp[k] + fr * fp[F + k] + fm * fp[2 * F + k];
            gf[k] = fq * cp;
            gf[F + k] = fr * cp;
            gf[2 * F + k] = fm * cp;
        }
        if ((p - p0) % BLOCK == BLOCK - 1 || p == p1 - 1) {
            const int64_t first = p - (p - p0) % BLOCK;
            add_filter_gradients(e + first * n_rbf, gs, p + 1 - first, n_rbf, 3 * F, gwt, gb);
        }
        if (Geometry) {
            for (int64_t r = 0; r < n_rbf; ++r) {
                const T* wr = wt + r * 3 * F;
                T s = 0;
#pragma omp simd reduction(+ : s)
                for (int64_t k = 0; k < 3 * F; ++k) s += wr[k] * gf[k];
                grad_e[p * n_rbf + r] = s;
            }
            if (grad_c) grad_c[p] = sc;
            grad_d[3 * p] = s0;
            grad_d[3 * p + 1] = s1;
            grad_d[3 * p + 2] = s2;
        }
    }
}

template <typename T>
void painn_messages(const T* x, const T* mu, const T* e, const T* wt, const T* b,
                    int64_t n_rbf, const T* c, const T* d, const int64_t* idx_i,
                    const int64_t* idx_j, const int64_t* pair_offsets, int64_t n_molecules,
                    int64_t n_pairs, int64_t width, int both_ways, int threads, T* dq, T* dmu) {
    over_molecules(pair_offsets, n_molecules, n_pairs, threads, [=](int64_t p0, int64_t p1) {
        auto run = [&](auto both, auto has_mu) {
            painn_forward_pairs<decltype(both)::value, decltype(has_mu)::value>(
                x, mu, e, wt, b, n_rbf, c, d, idx_i, idx_j, dq, dmu, width, p0, p1);
        };
        using yes = std::true_type;
        using no = std::false_type;
        if (both_ways) mu ? run(yes{}, yes{}) : run(yes{}, no{});
        else mu ? run(no{}, yes{}) : run(no{}, no{});
    });
}

// grad_wt (n_rbf x 3F) and grad_b (3F) are written; grad_x and grad_mu (zeroed) added to;
// grad_e, grad_c and grad_d (all null, or grad_e and grad_d given) written.
template <typename T>
void painn_messages_backward(const T* gq, const T* gmu, const T* x, const T* mu, const T* e,
                             const T* wt, const T* b, int64_t n_rbf, const T* c, const T* d,
                             const int64_t* idx_i, const int64_t* idx_j,
                             const int64_t* pair_offsets, int64_t n_molecules, int64_t n_pairs,
                             int64_t width, int both_ways, int threads, T* grad_x, T* grad_mu,
                             T* grad_wt, T* grad_b, T* grad_e, T* grad_c, T* grad_d) {
    const int64_t n = 3 * width, size = (n_rbf + 1) * n;
    const int64_t n_chunks = n_molecules > 0 ? (n_molecules + CHUNK - 1) / CHUNK : 1;
    std::vector<T> partial(n_chunks * size, T(0));  // per chunk: grad_wt, then grad_b
    T* sums = partial.data();
    auto chunk = [=](int64_t k) {
        const int64_t p0 = n_molecules > 0 ? pair_offsets[k * CHUNK] : 0;
        const int64_t last = (k + 1) * CHUNK < n_molecules ? (k + 1) * CHUNK : n_molecules;
        const int64_t p1 = n_molecules > 0 ? pair_offsets[last] : n_pairs;
        T* gwt = sums + k * size;
        auto run = [&](auto both, auto has_mu, auto geometry) {
            painn_backward_pairs<decltype(both)::value, decltype(has_mu)::value,
                                 decltype(geometry)::value>(
                gq, gmu, x, mu, e, wt, b, n_rbf, c, d, idx_i, idx_j, grad_x, grad_mu, gwt,
                gwt + n_rbf * n, grad_e, grad_c, grad_d, width, p0, p1);
        };
        using yes = std::true_type;
        using no = std::false_type;
        if (both_ways) {
            if (mu) grad_e ? run(yes{}, yes{}, yes{}) : run(yes{}, yes{}, no{});
            else grad_e ? run(yes{}, no{}, yes{}) : run(yes{}, no{}, no{});
        } else {
            if (mu) grad_e ? run(no{}, yes{}, yes{}) : run(no{}, yes{}, no{});
            else grad_e ? run(no{}, no{}, yes{}) : run(no{}, no{}, no{});
        }
    };
    if (threads <= 1 || n_chunks == 1) {
        for (int64_t k = 0; k < n_chunks; ++k) chunk(k);
    } else {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t k = 0; k < n_chunks; ++k) chunk(k);
    }
    for (int64_t m = 0; m < size; ++m) {  // the chunks' sums, in order
        T total = 0;
        for (int64_t k = 0; k < n_chunks; ++k) total += sums[k * size + m];
        (m < n_rbf * n ? grad_wt[m] : grad_b[m - n_rbf * n]) = total;
    }
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

int molstrata_kernels_version() { return 4; }

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
    void painn_messages_##S(const T* x, const T* mu, const T* e, const T* wt, const T* b,  \
                            int64_t n_rbf, const T* c, const T* d, const int64_t* idx_i,  \
                            const int64_t* idx_j, const int64_t* pair_offsets,            \
                            int64_t n_molecules, int64_t n_pairs, int64_t width,          \
                            int both_ways, int threads, T* dq, T* dmu) {                  \
        painn_messages(x, mu, e, wt, b, n_rbf, c, d, idx_i, idx_j, pair_offsets,          \
                       n_molecules, n_pairs, width, both_ways, threads, dq, dmu);         \
    }                                                                                     \
    void painn_messages_backward_##S(                                                     \
        const T* gq, const T* gmu, const T* x, const T* mu, const T* e, const T* wt,      \
        const T* b, int64_t n_rbf, const T* c, const T* d, const int64_t* idx_i,          \
        const int64_t* idx_j, const int64_t* pair_offsets, int64_t n_molecules,           \
        int64_t n_pairs, int64_t width, int both_ways, int threads, T* grad_x,            \
        T* grad_mu, T* grad_wt, T* grad_b, T* grad_e, T* grad_c, T* grad_d) {             \
        painn_messages_backward(gq, gmu, x, mu, e, wt, b, n_rbf, c, d, idx_i, idx_j,      \
                                pair_offsets, n_molecules, n_pairs, width, both_ways,     \
                                threads, grad_x, grad_mu, grad_wt, grad_b, grad_e,        \
                                grad_c, grad_d);                                          \
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
