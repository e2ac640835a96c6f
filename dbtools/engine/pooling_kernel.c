/* Pooled detector responses of every stride-1 window of a sequence, fused in one pass.
 *
 * Part of dbtools (dbtools/engine/native.py compiles and loads this file). The torch path
 * (BankEngine._pooled_cuts) computes the same values with one tensor operation per filter
 * row, and each operation streams its rows through memory; here the partial sums stay in
 * registers.
 *
 * Windows s = 0 .. nw-1 cover bases x[s .. s+w-1] (w >= m); each is padded with m-1 N on
 * both sides, as the original scorer does. Weights are centred per row, so an N (code >= 4)
 * adds exactly 0, and a detector's response at filter start q is
 *     cst + the sum, over rows r with q+r inside the window, of wc[r][x[q+r]].
 * out_max[s] = max(0, every response of the window); with out_sum, also
 * out_sum[s] = scale * the sum of max(0, response) (average pooling; scale = 1 / (w+m-1)).
 *
 * Edge cuts as a shift register. Walking down the sequence (t decreasing), slot k holds the
 * sum of rows k..m-1 of the filter starting at t-k; all these rows lie at t or after, so
 * slot k is exactly window t's left cut that drops k rows, and slot 0 is the full response
 * at t. Stepping to t-1 moves slot k+1 to slot k and adds row k at base x[t-1]. Walking up
 * (t increasing), slot l holds rows 0..l-1 of the filter ending its l-th row at t: the right
 * cut of the window that ends at t. So each base costs m vector adds and m maxima per strand
 * side, with the m slots in registers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16  /* detector columns per tile: one 512-bit vector */
#define WT 1024   /* windows per tile */
#define MAXM 64   /* longest detector with a register-resident shift register */
#define MAXH 4    /* hidden units, in vectors of LANES, of a fused dense head */

/* explicit vectors (GCC/Clang extensions); on CPUs without AVX-512 each is split in two or four */
typedef float vf __attribute__((vector_size(4 * LANES)));
typedef int32_t vi __attribute__((vector_size(4 * LANES)));

#if defined(__AVX512F__) && LANES == 16
#include <immintrin.h>
static inline __attribute__((always_inline)) vf vmax(vf a, vf b) { return (vf)_mm512_max_ps((__m512)a, (__m512)b); }
#else
static inline __attribute__((always_inline)) vf vmax(vf a, vf b)
{
    vi m = a > b;
    return (vf)(((vi)a & m) | ((vi)b & ~m));
}
#endif

/* A loop over detector rows: fully unrolled where m is a compile-time constant (the copy of the
 * passes for that length, whose slots then live in registers), a plain loop otherwise (unrolling
 * a loop of unknown length 65 times costs the compiler minutes and gains nothing). */
#define ROWS(head, ...) do { \
        if (__builtin_constant_p(m)) { _Pragma("GCC unroll 65") for head { __VA_ARGS__ } } \
        else { for head { __VA_ARGS__ } } \
    } while (0)

/* max (and sum of max(0, .)) of r[1..m-1] in four independent chains, not one serial chain */
static inline __attribute__((always_inline)) vf max_cuts(const vf *r, const int m, const int sum, vf *total)
{
    const vf zero = {0};
    vf e[4] = {r[1], r[1], r[1], r[1]}, s[4] = {zero, zero, zero, zero};
    ROWS((int k = 1; k < m; k++), {
        e[k & 3] = vmax(e[k & 3], r[k]);
        if (sum)
            s[k & 3] += vmax(r[k], zero);
    });
    if (sum)
        *total = (s[0] + s[1]) + (s[2] + s[3]);
    return vmax(vmax(e[0], e[1]), vmax(e[2], e[3]));
}

/* Left cuts and full responses of one tile: positions lo..hi-1 (hi exclusive, walking down).
 * conv[t - lo] = max(0, full response at t) for t in [lo, hi - m + 1);
 * edge[t - lo] = max of the left cuts of window t, for t in [lo, lo + nt) with t - lo a
 * multiple of step; esum[t - lo] (if sum) = sum of max(0, those cuts). */
static inline __attribute__((always_inline)) void left_pass(
    const uint8_t *x, int64_t lo, int64_t hi, int64_t nt, int64_t step, const int m, const vf *wt, vf ct,
    vf *conv, vf *edge, vf *esum, const int sum)
{
    int64_t phase = (hi - 1 - lo) % step;  /* (t - lo) % step */
    vf r[MAXM + 1];
    const vf zero = {0};
    ROWS((int k = 0; k < m; k++), r[k] = ct;);
    for (int64_t t = hi - 1; t >= lo; t--) {
        const vf *row = wt + x[t];  /* wt[k * 5 + code] */
        ROWS((int k = 0; k < m - 1; k++), r[k] = r[k + 1] + row[k * 5];);
        r[m - 1] = ct + row[(m - 1) * 5];
        const int64_t i = t - lo;
        if (t <= hi - m)
            conv[i] = vmax(r[0], zero);
        if (i < nt && phase == 0) {
            if (m == 1) {  /* no cuts */
                edge[i] = zero;
                if (sum)
                    esum[i] = zero;
            } else {
                edge[i] = max_cuts(r, m, sum, esum + i);
            }
        }
        phase = phase ? phase - 1 : step - 1;
    }
}

/* Right cuts of one tile: walking up positions lo..hi-1; the window ending at t is
 * t - end0 (an index into edge/esum) when 0 <= t - end0 < nt, taken if a multiple of step. */
static inline __attribute__((always_inline)) void right_pass(
    const uint8_t *x, int64_t lo, int64_t hi, int64_t end0, int64_t nt, int64_t step, const int m,
    const vf *wt, vf ct, vf *edge, vf *esum, const int sum)
{
    int64_t phase = ((lo - end0) % step + step) % step;  /* (t - end0) mod step */
    vf r[MAXM + 1];
    const vf zero = {0};
    ROWS((int l = 0; l <= m; l++), r[l] = ct;);
    for (int64_t t = lo; t < hi; t++) {
        const vf *row = wt + x[t];
        ROWS((int l = m - 1; l >= 2; l--), r[l] = r[l - 1] + row[(l - 1) * 5];);
        r[1] = ct + row[0];
        const int64_t i = t - end0;
        if (i >= 0 && i < nt && m > 1 && phase == 0) {
            vf s = zero;
            edge[i] = vmax(edge[i], max_cuts(r, m, sum, &s));
            if (sum)
                esum[i] += s;
        }
        phase = phase + 1 == step ? 0 : phase + 1;
    }
}

typedef void (*left_fn)(const uint8_t *, int64_t, int64_t, int64_t, int64_t, int, const vf *, vf, vf *, vf *,
                        vf *, int);
typedef void (*right_fn)(const uint8_t *, int64_t, int64_t, int64_t, int64_t, int64_t, int, const vf *, vf, vf *,
                         vf *, int);

/* one copy of each pass per detector length, so the slots are registers */
#define PASSES(M) \
    static void left_##M(const uint8_t *x, int64_t lo, int64_t hi, int64_t nt, int64_t step, int m, \
                         const vf *wt, vf ct, vf *conv, vf *edge, vf *esum, int sum) \
    { (void)m; if (sum) left_pass(x, lo, hi, nt, step, M, wt, ct, conv, edge, esum, 1); \
      else left_pass(x, lo, hi, nt, step, M, wt, ct, conv, edge, esum, 0); } \
    static void right_##M(const uint8_t *x, int64_t lo, int64_t hi, int64_t end0, int64_t nt, int64_t step, \
                          int m, const vf *wt, vf ct, vf *edge, vf *esum, int sum) \
    { (void)m; if (sum) right_pass(x, lo, hi, end0, nt, step, M, wt, ct, edge, esum, 1); \
      else right_pass(x, lo, hi, end0, nt, step, M, wt, ct, edge, esum, 0); }

#define ENTRY(M) {left_##M, right_##M}
PASSES(1) PASSES(2) PASSES(3) PASSES(4) PASSES(5) PASSES(6) PASSES(7) PASSES(8) PASSES(9)
PASSES(10) PASSES(11) PASSES(12) PASSES(13) PASSES(14) PASSES(15) PASSES(16)
#if defined(__AVX512F__)
/* a copy of the passes for every length */
#define P8(a) PASSES(a##1) PASSES(a##2) PASSES(a##3) PASSES(a##4) PASSES(a##5) PASSES(a##6) PASSES(a##7) \
    PASSES(a##8)
PASSES(17) PASSES(18) PASSES(19) PASSES(20) P8(2) PASSES(29) PASSES(30) P8(3) PASSES(39) PASSES(40)
P8(4) PASSES(49) PASSES(50) P8(5) PASSES(59) PASSES(60) PASSES(61) PASSES(62) PASSES(63) PASSES(64)
#define E8(a) ENTRY(a##1), ENTRY(a##2), ENTRY(a##3), ENTRY(a##4), ENTRY(a##5), ENTRY(a##6), ENTRY(a##7), \
    ENTRY(a##8)
#define HIGH ENTRY(17), ENTRY(18), ENTRY(19), ENTRY(20), E8(2), ENTRY(29), ENTRY(30), E8(3), ENTRY(39), \
    ENTRY(40), E8(4), ENTRY(49), ENTRY(50), E8(5), ENTRY(59), ENTRY(60), ENTRY(61), ENTRY(62), ENTRY(63), \
    ENTRY(64)
#else
/* any length, the slots in memory: for lengths past 16 without AVX-512, where 2m
 * half-vectors cannot stay in 16 registers and fully unrolled copies of every length take the
 * compiler many minutes */
static void left_any(const uint8_t *x, int64_t lo, int64_t hi, int64_t nt, int64_t step, int m, const vf *wt,
                     vf ct, vf *conv, vf *edge, vf *esum, int sum)
{
    left_pass(x, lo, hi, nt, step, m, wt, ct, conv, edge, esum, sum);
}
static void right_any(const uint8_t *x, int64_t lo, int64_t hi, int64_t end0, int64_t nt, int64_t step, int m,
                      const vf *wt, vf ct, vf *edge, vf *esum, int sum)
{
    right_pass(x, lo, hi, end0, nt, step, m, wt, ct, edge, esum, sum);
}
#define ANY {left_any, right_any}
#define A8 ANY, ANY, ANY, ANY, ANY, ANY, ANY, ANY
#define HIGH A8, A8, A8, A8, A8, A8
#endif
static const struct { left_fn left; right_fn right; } PASS[MAXM + 1] = {
    {0, 0}, ENTRY(1), ENTRY(2), ENTRY(3), ENTRY(4), ENTRY(5), ENTRY(6), ENTRY(7), ENTRY(8), ENTRY(9),
    ENTRY(10), ENTRY(11), ENTRY(12), ENTRY(13), ENTRY(14), ENTRY(15), ENTRY(16), HIGH};
_Static_assert(sizeof PASS / sizeof PASS[0] == MAXM + 1, "one pass pair per length");

/* out[dest[f] + j * ld_s] = v[j][f] for j < nt, f < fw */
static void store(float *out, const int64_t *dest, const vf *v, int64_t nt, int64_t fw, int64_t ld_s)
{
    for (int64_t f = 0; f < fw; f++) {
        float *o = out + dest[f];
        if (ld_s == 1)
            for (int64_t j = 0; j < nt; j++)
                o[j] = v[j][f];
        else
            for (int64_t j = 0; j < nt; j++)
                o[j * ld_s] = v[j][f];
    }
}

static inline float hsum(vf v)
{
#if defined(__AVX512F__) && LANES == 16
    return _mm512_reduce_add_ps((__m512)v);
#else
    float s = 0.f;
    for (int f = 0; f < LANES; f++)
        s += v[f];
    return s;
#endif
}

/* The dense layers of one model strand on its pooled features (max, and avg if sum), for nt
 * windows: w1 [k][LANES][hp] (hp = hidden, or 1 without a hidden layer), b1 [hp], w2 [hidden],
 * b2 [1]; features past the model's detectors have zero weights. */
static void heads(const vf *pmax, const vf *pavg, int64_t nt, int64_t hidden, const float *w1,
                  const float *b1, const float *w2, const float *b2, float *out, int64_t ld_s)
{
    if (hidden == 0) {
        vf wm, wa = {0};
        memcpy(&wm, w1, sizeof wm);
        if (pavg)
            memcpy(&wa, w1 + LANES, sizeof wa);
        for (int64_t j = 0; j < nt; j++) {
            vf t = pmax[j] * wm;
            if (pavg)
                t += pavg[j] * wa;
            out[j * ld_s] = b1[0] + hsum(t);
        }
        return;
    }
    const int64_t hv = hidden / LANES;  /* 1 .. MAXH vectors */
    const vf *W = (const vf *)w1;       /* [k][LANES][hv] */
    vf bias[MAXH], w2v[MAXH];
    memcpy(bias, b1, sizeof(vf) * (size_t)hv);
    memcpy(w2v, w2, sizeof(vf) * (size_t)hv);
    const vf zero = {0};
    for (int64_t j = 0; j < nt; j++) {
        vf h[MAXH];
        for (int64_t v = 0; v < hv; v++)
            h[v] = bias[v];
        for (int f = 0; f < LANES; f++) {
            const float a = pmax[j][f];
            for (int64_t v = 0; v < hv; v++)
                h[v] += a * W[f * hv + v];
        }
        if (pavg)
            for (int f = 0; f < LANES; f++) {
                const float a = pavg[j][f];
                for (int64_t v = 0; v < hv; v++)
                    h[v] += a * W[(LANES + f) * hv + v];
            }
        vf t = zero;
        for (int64_t v = 0; v < hv; v++)
            t += vmax(h[v], zero) * w2v[v];
        out[j * ld_s] = b2[0] + hsum(t);
    }
}

/* nseq sequences, sequence b's nw + w - 1 codes at x + b * xstride; wc: [m][5][F] (row 4 of
 * each filter row is 0); cst: [F]. Windows s = 0, step, 2 step, ... < nw are computed, the i-th
 * of them written at index i. Column f's max pooled value for window i of sequence b goes
 * to out[dest_max[f] + i * ld_s + b * seqstride]; with dest_sum (may be NULL), its average
 * pooled value to out[dest_sum[f] + ...].
 * With w1 (not NULL), each tile of LANES columns is one model strand and the dense layers run
 * here: tile t's score goes to out[dest_max[t] + ...]; w1 [tiles][k][LANES][hp] (k = 2 with
 * dest_sum, hp = hidden or 1), b1 [tiles][hp], w2 [tiles][hidden], b2 [tiles]; hidden is 0 or
 * a multiple of LANES up to MAXH * LANES.
 * Returns 0; -1 if memory could not be allocated; -2 if m is outside 1..MAXM, w < m, or the
 * head's shape is not supported. */
int dbt_pool_windows(const uint8_t *x, int64_t nseq, int64_t xstride, int64_t nw, int64_t w,
                     int64_t m, const float *wc, const float *cst, int64_t F, float *out,
                     const int64_t *dest_max, const int64_t *dest_sum, int64_t ld_s, int64_t seqstride,
                     float scale, int64_t hidden, const float *w1, const float *b1, const float *w2,
                     const float *b2, int64_t step)
{
    if (m < 1 || m > MAXM || w < m || step < 1)
        return -2;
    if (w1 && (F % LANES || hidden < 0 || hidden % LANES || hidden > MAXH * LANES))
        return -2;
    if (nw <= 0 || F <= 0 || nseq <= 0)
        return 0;
    const int64_t inner = w - m + 1;          /* filter starts wholly inside a window */
    const int64_t tile = step <= WT ? WT / step * step : step;  /* windows per tile, a multiple of step */
    const int64_t span = tile + w - 1;        /* positions of one window tile */
    const int64_t n = nw + w - 1;
    const int sum = dest_sum != NULL;  /* average pooling too (with w1, dest_sum only says so) */
    const int64_t k = dest_sum ? 2 : 1, hp = hidden ? hidden : 1;
    vf *wt = aligned_alloc(64, sizeof(vf) * (size_t)(m * 5));
    vf *conv = aligned_alloc(64, sizeof(vf) * (size_t)span);
    vf *pre = aligned_alloc(64, sizeof(vf) * (size_t)span);
    vf *suf = aligned_alloc(64, sizeof(vf) * (size_t)span);
    vf *edge = aligned_alloc(64, sizeof(vf) * (size_t)tile);
    vf *esum = aligned_alloc(64, sizeof(vf) * (size_t)tile);
    double *cum = malloc(sizeof(double) * LANES * (size_t)(span + 1));
    uint8_t *xc = malloc((size_t)(nseq * n));
    int rc = 0;
    if (!wt || !conv || !pre || !suf || !edge || !esum || !cum || !xc) {
        rc = -1;
        goto done;
    }
    for (int64_t b = 0; b < nseq; b++)
        for (int64_t i = 0; i < n; i++)
            xc[b * n + i] = x[b * xstride + i] < 4 ? x[b * xstride + i] : 4;
    for (int64_t c0 = 0; c0 < F; c0 += LANES) {
        const int64_t fw = F - c0 < LANES ? F - c0 : LANES;
        float tmp[LANES];
        memset(wt, 0, sizeof(vf) * (size_t)(m * 5));
        for (int64_t r = 0; r < m * 5; r++)
            memcpy((float *)(wt + r), wc + r * F + c0, sizeof(float) * (size_t)fw);
        memset(tmp, 0, sizeof tmp);
        memcpy(tmp, cst + c0, sizeof(float) * (size_t)fw);
        vf ct;
        memcpy(&ct, tmp, sizeof ct);
        for (int64_t b = 0; b < nseq; b++) {
            const uint8_t *xb = xc + b * n;
            float *ob = out + b * seqstride;
            for (int64_t s0 = 0; s0 < nw; s0 += tile) {
                const int64_t nt = nw - s0 < tile ? nw - s0 : tile;
                const int64_t kept = (nt - 1) / step + 1;  /* windows s0, s0 + step, ... */
                const int64_t nq = nt + inner - 1;  /* interior filter starts s0 .. s0+nq-1 */
                /* left cuts of windows s0.. and full responses up to filter start s0+nq-1 */
                PASS[m].left(xb, s0, s0 + nt + w - 1, nt, step, (int)m, wt, ct, conv, edge, esum, sum);
                /* right cuts: windows s0.. end at s0+w-1..; their cut filters start after s0+w-m */
                PASS[m].right(xb, s0 + w - m + 1, s0 + nt + w - 1, s0 + w - 1, nt, step, (int)m, wt, ct, edge, esum, sum);
                /* sliding max over `inner` starts (van Herk / Gil-Werman: blockwise prefix and suffix maxima) */
                for (int64_t b0 = 0; b0 < nq; b0 += inner) {
                    const int64_t b1 = b0 + inner < nq ? b0 + inner : nq;
                    pre[b0] = conv[b0];
                    for (int64_t i = b0 + 1; i < b1; i++)
                        pre[i] = vmax(pre[i - 1], conv[i]);
                    suf[b1 - 1] = conv[b1 - 1];
                    for (int64_t i = b1 - 2; i >= b0; i--)
                        suf[i] = vmax(suf[i + 1], conv[i]);
                }
                if (sum) {  /* running sums in double: window sums by difference stay exact */
                    for (int f = 0; f < LANES; f++)
                        cum[f] = 0.0;
                    for (int64_t i = 0; i < nq; i++)
                        for (int f = 0; f < LANES; f++)
                            cum[(i + 1) * LANES + f] = cum[i * LANES + f] + conv[i][f];
                }
                for (int64_t j = 0; j < nt; j += step) {  /* the kept windows' results, packed in place */
                    edge[j / step] = vmax(vmax(suf[j], pre[j + inner - 1]), edge[j]);
                    if (sum) {
                        const double *a = cum + j * LANES, *z = cum + (j + inner) * LANES;
                        vf v = esum[j];
                        for (int f = 0; f < LANES; f++)
                            v[f] = scale * ((float)(z[f] - a[f]) + v[f]);
                        esum[j / step] = v;
                    }
                }
                if (w1) {
                    const int64_t t = c0 / LANES;
                    heads(edge, sum ? esum : NULL, kept, hidden, w1 + t * k * LANES * hp, b1 + t * hp,
                          hidden ? w2 + t * hidden : NULL, b2 ? b2 + t : NULL,
                          ob + dest_max[t] + s0 / step * ld_s, ld_s);
                    continue;
                }
                store(ob + s0 / step * ld_s, dest_max + c0, edge, kept, fw, ld_s);
                if (sum)
                    store(ob + s0 / step * ld_s, dest_sum + c0, esum, kept, fw, ld_s);
            }
        }
    }
done:
    free(wt); free(conv); free(pre); free(suf); free(edge); free(esum); free(cum); free(xc);
    return rc;
}
