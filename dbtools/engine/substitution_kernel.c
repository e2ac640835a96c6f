/* Scores of every single-base substitution of a sequence, for model strands laid out one per
 * tile of LANES detector columns (the layout of the fused pooling kernel's heads).
 *
 * Part of dbtools (dbtools/engine/substitutions.py compiles and loads this file).
 *
 * Windows p = 0 .. P-1 (P = L - wl + 1) cover bases p .. p+wl-1, each padded with m-1 N on its
 * own, so window p has Q = wl + m - 1 detector positions q, the filter starting at
 * s = p + q - (m-1); rows lo(q) = max(0, m-1-q) .. hi(q) = min(m, Q-q) - 1 read the window and the
 * others an N, which adds 0 to centred weights. With rs[s][l] the sum of rows < l at filter start
 * s, the pre-activation is A[p][q] = cst + rs[s][hi(q)] - rs[s][lo(q)].
 *
 * A substitution at base i = p + t changes only positions q = t .. t+m-1 of window p, where row
 * j = t+m-1-q reads base i, by W[j][b] - W[j][x_i]. So the mutant's pooled max in window p is the
 * max of the unchanged positions (prefix and suffix maxima of the wild type) and of the m updated
 * ones; its pooled sum is the unchanged positions' sums (prefix and suffix sums, no cancellation)
 * plus the m updated terms. The dense layers score the window: without a hidden layer in full, with
 * one from the wild type's hidden pre-activations plus the features that changed. Windows that do
 * not hold i keep their wild-type scores: prefix and suffix maxima (or sums) of those.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16 /* detector columns per tile: one model strand */
#define MAXH 4   /* hidden units in vectors of LANES */

typedef float vf __attribute__((vector_size(4 * LANES)));
typedef int32_t vi __attribute__((vector_size(4 * LANES)));

#if defined(__AVX512F__) && LANES == 16
#include <immintrin.h>
static inline __attribute__((always_inline)) vf vmax(vf a, vf b) { return (vf)_mm512_max_ps((__m512)a, (__m512)b); }
static inline float hsum(vf v) { return _mm512_reduce_add_ps((__m512)v); }
#else
static inline __attribute__((always_inline)) vf vmax(vf a, vf b)
{
    vi k = a > b;
    return (vf)(((vi)a & k) | ((vi)b & ~k));
}
static inline float hsum(vf v)
{
    float s = 0.f;
    for (int f = 0; f < LANES; f++)
        s += v[f];
    return s;
}
#endif

/* bit f set where lane f of v is not 0 */
static inline unsigned changed_lanes(vf v)
{
#if defined(__AVX512F__) && LANES == 16
    return _mm512_cmp_ps_mask((__m512)v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
#else
    unsigned k = 0;
    for (int f = 0; f < LANES; f++)
        k |= (unsigned)(v[f] != 0.f) << f;
    return k;
#endif
}

static inline vf load(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The dense layers of one strand. */
struct head {
    int64_t hv;          /* hidden units / LANES; 0 without a hidden layer */
    int avg;             /* average pooling too */
    vf wm, wa;           /* without hidden layer: weights of the max and mean features */
    float b1, b2;        /* bias of the output (no hidden) or of the second layer */
    const vf *W;         /* [k][LANES][hv]: weights of the features (max, then mean) */
    vf bias[MAXH], w2[MAXH];
};

static inline float out_of(const struct head *h, const vf *z)
{
    const vf zero = {0};
    vf t = zero;
    for (int64_t v = 0; v < h->hv; v++)
        t += vmax(z[v], zero) * h->w2[v];
    return h->b2 + hsum(t);
}

/* Score of pooled features (max mx, mean mn); with a hidden layer, its pre-activations go to z. */
static inline float score_of(const struct head *h, vf mx, vf mn, vf *z)
{
    if (!h->hv) {
        vf t = mx * h->wm;
        if (h->avg)
            t += mn * h->wa;
        return h->b1 + hsum(t);
    }
    for (int64_t v = 0; v < h->hv; v++)
        z[v] = h->bias[v];
    for (int f = 0; f < LANES; f++) {
        const vf *row = h->W + f * h->hv;
        for (int64_t v = 0; v < h->hv; v++)
            z[v] += mx[f] * row[v];
    }
    if (h->avg)
        for (int f = 0; f < LANES; f++) {
            const vf *row = h->W + (LANES + f) * h->hv;
            for (int64_t v = 0; v < h->hv; v++)
                z[v] += mn[f] * row[v];
        }
    return out_of(h, z);
}

/* A mutant window's score from its features (max mx, mean mn), given the wild type's (max wmx,
 * hidden pre-activations zw, score ws) and the change of the mean da (exactly 0 where no rectified
 * term changed): with a hidden layer only the changed features are applied. */
static inline float mutant_score(const struct head *h, vf mx, vf mn, vf da, vf wmx, const vf *zw, float ws)
{
    if (!h->hv) {
        vf t = mx * h->wm;
        if (h->avg)
            t += mn * h->wa;
        return h->b1 + hsum(t);
    }
    const vf dm = mx - wmx;
    vf z[MAXH];
    unsigned km = changed_lanes(dm), ka = h->avg ? changed_lanes(da) : 0;
    if (!(km | ka))
        return ws;
    for (int64_t v = 0; v < h->hv; v++)
        z[v] = zw[v];
    for (; km; km &= km - 1) {
        const int f = __builtin_ctz(km);
        const vf *row = h->W + f * h->hv;
        for (int64_t v = 0; v < h->hv; v++)
            z[v] += dm[f] * row[v];
    }
    for (; ka; ka &= ka - 1) {
        const int f = __builtin_ctz(ka);
        const vf *row = h->W + (LANES + f) * h->hv;
        for (int64_t v = 0; v < h->hv; v++)
            z[v] += da[f] * row[v];
    }
    return out_of(h, z);
}

/* One sequence x[0..L-1] (codes, >= 4 is N), windows of wl bases (1 <= wl <= L), detectors of m
 * rows; tiles u0..u1-1 of wc [m][5][F] (centred, the N row 0) and cst [F]; dense layers as the
 * fused kernel's heads: w1 [tiles][k][LANES][hp] (k = 2 with avg, hp = hidden or 1), b1
 * [tiles][hp], w2 [tiles][hidden], b2 [tiles]. Per tile u: wt[u] the wild-type score, mut[u][i][b]
 * the score with base b at i (the wild-type score at b = x[i]); over windows the max, or with
 * average_windows the sum, divided by L when there is more than one window.
 * Returns 0; -1 if memory could not be allocated; -2 for arguments out of range. */
int dbt_substitution_scores(const uint8_t *x, int64_t L, int64_t wl, int64_t m, const float *wc,
                            const float *cst, int64_t F, int64_t u0, int64_t u1, int64_t avg, int64_t hidden,
                            const float *w1, const float *b1, const float *w2, const float *b2,
                            int64_t average_windows, float *wt, float *mut)
{
    if (m < 1 || wl < 1 || wl > L || F % LANES || u0 < 0 || u1 > F / LANES || u0 > u1 || hidden < 0
        || hidden % LANES || hidden > MAXH * LANES)
        return -2;
    const int64_t P = L - wl + 1, Q = wl + m - 1, k = avg ? 2 : 1, hp = hidden ? hidden : 1;
    const int64_t rowlen = m + 1;
    const float scale = 1.0f / (float)Q;
    uint8_t *xc = malloc((size_t)L);
    vf *w = aligned_alloc(64, sizeof(vf) * (size_t)(m * 5));
    vf *D = aligned_alloc(64, sizeof(vf) * (size_t)(5 * 4 * m));    /* [x][b][kk]: row m-1-kk, b - x */
    vf *rs = aligned_alloc(64, sizeof(vf) * (size_t)(Q * rowlen));  /* ring of Q filter starts */
    vf *A = aligned_alloc(64, sizeof(vf) * (size_t)(5 * Q + 3));  /* A, pre (Q each); suf, psum, ssum (Q+1) */
    vf *W = aligned_alloc(64, sizeof(vf) * (size_t)(k * LANES * (hidden ? hidden / LANES : 1)));
    float *acc = malloc(sizeof(float) * (size_t)(4 * L));
    float *ws = malloc(sizeof(float) * (size_t)P);
    float *pm = malloc(sizeof(float) * (size_t)(2 * P + 2));
    double *cw = malloc(sizeof(double) * (size_t)(P + 1));
    int rc = 0;
    if (!xc || !w || !D || !rs || !A || !W || !acc || !ws || !pm || !cw) {
        rc = -1;
        goto done;
    }
    vf *pre = A + Q, *suf = pre + Q, *psum = suf + Q + 1, *ssum = psum + Q + 1;
    float *sm = pm + P + 1;
    const vf zero = {0};
    for (int64_t i = 0; i < L; i++)
        xc[i] = x[i] < 4 ? x[i] : 4;
    for (int64_t u = u0; u < u1; u++) {
        for (int64_t r = 0; r < m * 5; r++)
            w[r] = load(wc + r * F + u * LANES);
        const vf ct = load(cst + u * LANES);
        for (int64_t c = 0; c < 5; c++)
            for (int64_t b = 0; b < 4; b++)
                for (int64_t kk = 0; kk < m; kk++)
                    D[(c * 4 + b) * m + kk] = w[(m - 1 - kk) * 5 + b] - w[(m - 1 - kk) * 5 + c];
        struct head h = {.hv = hidden / LANES, .avg = (int)avg, .W = W};
        const float *hw = w1 + u * k * LANES * hp;
        if (hidden) {
            memcpy(W, hw, sizeof(float) * (size_t)(k * LANES * hidden));
            memcpy(h.bias, b1 + u * hidden, sizeof(float) * (size_t)hidden);
            memcpy(h.w2, w2 + u * hidden, sizeof(float) * (size_t)hidden);
            h.b2 = b2[u];
        } else {
            h.wm = load(hw);
            h.wa = avg ? load(hw + LANES) : zero;
            h.b1 = b1[u];
        }
        const int maxw = !average_windows;
        for (int64_t i = 0; i < 4 * L; i++)
            acc[i] = maxw ? -INFINITY : 0.f;
        /* row sums of the filter starting at s = si - (m-1), into ring slot si % Q */
#define FILL(si) do { \
            vf *o = rs + ((si) % Q) * rowlen, run = zero; \
            const int64_t s0 = (si) - (m - 1); \
            o[0] = zero; \
            for (int64_t j = 0; j < m; j++) { \
                const int64_t pos = s0 + j; \
                run += w[j * 5 + (pos >= 0 && pos < L ? xc[pos] : 4)]; \
                o[j + 1] = run; \
            } \
        } while (0)
        for (int64_t si = 0; si < Q - 1; si++)
            FILL(si);
        for (int64_t p = 0; p < P; p++) {
            FILL(p + Q - 1);
            const int64_t r0 = p % Q;
            for (int64_t q = 0; q < Q; q++) {
                const int64_t lo = m - 1 - q > 0 ? m - 1 - q : 0, hi = Q - q < m ? Q - q : m;
                const vf *o = rs + (r0 + q < Q ? r0 + q : r0 + q - Q) * rowlen;
                A[q] = ct + (o[hi] - o[lo]);
            }
            /* prefix and suffix maxima and sums of the rectified wild type */
            vf run = zero, tot = zero;
            psum[0] = zero;
            for (int64_t q = 0; q < Q; q++) {
                const vf r = vmax(A[q], zero);
                run = vmax(run, r);
                pre[q] = run;
                tot += r;
                psum[q + 1] = tot;
            }
            run = zero, tot = zero;
            suf[Q] = ssum[Q] = zero;
            for (int64_t q = Q - 1; q >= 0; q--) {
                const vf r = vmax(A[q], zero);
                run = vmax(run, r);
                suf[q] = run;
                tot += r;
                ssum[q] = tot;
            }
            const vf wmx = pre[Q - 1], wmn = psum[Q] * scale;
            vf zw[MAXH];
            const float wscore = score_of(&h, wmx, wmn, zw);
            ws[p] = wscore;
            for (int64_t t = 0; t < wl; t++) {
                const int64_t i = p + t;
                const int c = xc[i];
                const vf E = vmax(t ? pre[t - 1] : zero, suf[t + m < Q ? t + m : Q]);
                const vf rest = psum[t] + ssum[t + m < Q ? t + m : Q];
                const vf *a = A + t;
                if (c < 4) { /* the three other bases together: one pass over the changed positions */
                    const int b0 = (c + 1) & 3, b1_ = (c + 2) & 3, b2_ = (c + 3) & 3;
                    const vf *d0 = D + (c * 4 + b0) * m, *d1 = D + (c * 4 + b1_) * m, *d2 = D + (c * 4 + b2_) * m;
                    vf m0 = E, m1 = E, m2 = E, s0 = zero, s1 = zero, s2 = zero, sw = zero;
                    for (int64_t kk = 0; kk < m; kk++) {
                        const vf v = a[kk];
                        const vf u0v = v + d0[kk], u1v = v + d1[kk], u2v = v + d2[kk];
                        m0 = vmax(m0, u0v);
                        m1 = vmax(m1, u1v);
                        m2 = vmax(m2, u2v);
                        if (avg) {
                            s0 += vmax(u0v, zero);
                            s1 += vmax(u1v, zero);
                            s2 += vmax(u2v, zero);
                            sw += vmax(v, zero);
                        }
                    }
                    const float f0 = mutant_score(&h, m0, (rest + s0) * scale, (s0 - sw) * scale, wmx, zw, wscore);
                    const float f1 = mutant_score(&h, m1, (rest + s1) * scale, (s1 - sw) * scale, wmx, zw, wscore);
                    const float f2 = mutant_score(&h, m2, (rest + s2) * scale, (s2 - sw) * scale, wmx, zw, wscore);
                    float *o = acc + i * 4;
                    if (maxw) {
                        o[b0] = f0 > o[b0] ? f0 : o[b0];
                        o[b1_] = f1 > o[b1_] ? f1 : o[b1_];
                        o[b2_] = f2 > o[b2_] ? f2 : o[b2_];
                    } else {
                        o[b0] += f0;
                        o[b1_] += f1;
                        o[b2_] += f2;
                    }
                } else { /* an N: all four bases, one at a time */
                    for (int b = 0; b < 4; b++) {
                        const vf *d = D + (4 * 4 + b) * m;
                        vf mx = E, sn = zero, sw = zero;
                        for (int64_t kk = 0; kk < m; kk++) {
                            const vf uv = a[kk] + d[kk];
                            mx = vmax(mx, uv);
                            if (avg) {
                                sn += vmax(uv, zero);
                                sw += vmax(a[kk], zero);
                            }
                        }
                        const float f = mutant_score(&h, mx, (rest + sn) * scale, (sn - sw) * scale, wmx, zw, wscore);
                        float *o = acc + i * 4 + b;
                        *o = maxw ? (f > *o ? f : *o) : *o + f;
                    }
                }
            }
        }
#undef FILL
        /* windows that do not hold i keep their wild-type scores */
        pm[0] = -INFINITY;
        cw[0] = 0.0;
        for (int64_t p = 0; p < P; p++) {
            pm[p + 1] = ws[p] > pm[p] ? ws[p] : pm[p];
            cw[p + 1] = cw[p] + ws[p];
        }
        sm[P] = -INFINITY;
        for (int64_t p = P - 1; p >= 0; p--)
            sm[p] = ws[p] > sm[p + 1] ? ws[p] : sm[p + 1];
        const float div = average_windows && P > 1 ? (float)L : 1.f;
        const float wt_u = maxw ? pm[P] : (float)(cw[P] / div);
        wt[u] = wt_u;
        float *mo = mut + u * L * 4;
        for (int64_t i = 0; i < L; i++) {
            const int64_t lo = i - wl + 1 > 0 ? i - wl + 1 : 0, hi = i < P - 1 ? i : P - 1;
            for (int b = 0; b < 4; b++) {
                float v;
                if (b == xc[i])
                    v = wt_u;
                else if (maxw) {
                    const float other = pm[lo] > sm[hi + 1] ? pm[lo] : sm[hi + 1];
                    v = acc[i * 4 + b] > other ? acc[i * 4 + b] : other;
                } else
                    v = (float)(((double)acc[i * 4 + b] + (cw[P] - (cw[hi + 1] - cw[lo]))) / div);
                mo[i * 4 + b] = v;
            }
        }
    }
done:
    free(xc); free(w); free(D); free(rs); free(A); free(W); free(acc); free(ws); free(pm); free(cw);
    return rc;
}
