/*
 * Triangle activations of whitened patches, added to per-region sums.
 *
 * For each patch row r = [w, ||w||^2, 1] and each word column
 * c = [-2 c_k, 1, ||c_k||^2] of the packed words, r . c is the squared
 * distance ||w - c_k||^2. The work is done on tiles of FP_TILE_PATCHES
 * patches: for each panel of FP_PANEL_WORDS words, the tile's squared
 * distances are accumulated in registers (a small matrix product with the
 * words packed once per transform and thread by words._word_panels, so no
 * tile re-packs them),
 * turned into distances z_k there and stored once, while each patch's sum
 * of distances is kept. Then each patch adds f_k = max(0, mean(z) - z_k)
 * to its target row of sums. Compared with a BLAS product per block
 * followed by numpy passes (square root, mean, minimum, sums), the
 * distances are written and read once instead of six times.
 *
 * Two versions of the tile, chosen at run time: AVX-512 intrinsics (14
 * patches x 32 words in 28 registers; the distance is d * rsqrt(d) with one
 * Newton step, about 1e-7 relative error) on CPUs with AVX-512F, and
 * AVX2/FMA intrinsics (14 patches x 8 words in 14 registers, exact square
 * roots) on CPUs with AVX2 and FMA. Other CPUs and compilers get no tile
 * (fp_triangle_kernel_available says 0): featpipe then uses numpy and BLAS.
 *
 * Layouts (all float32, C order):
 *   panels   (n_panels, width, FP_PANEL_WORDS): word columns, zero-padded
 *            past n_words (a zero column gives distance 0, or 1e-15 in the
 *            AVX-512 tile, to a patch's total, and no activation);
 *   rows     (n_rows, width);
 *   sums     (n_targets, n_words); targets[i] is the row of sums patch i
 *            adds to.
 */
#ifndef FEATPIPE_TRIANGLE_TILE_H
#define FEATPIPE_TRIANGLE_TILE_H

#include <stddef.h>
#include <string.h>

#define FP_PANEL_WORDS 32
#define FP_TILE_PATCHES 14

/* Kernel ids. */
#define FP_KERNEL_AVX512 1
#define FP_KERNEL_AVX2 2

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FP_HAVE_X86_TILES 1
#include <immintrin.h>
#else
#define FP_HAVE_X86_TILES 0
#endif

#if FP_HAVE_X86_TILES
/*
 * target[k] += max(0, mean - z[k]) for every word. Inlined into each tile,
 * where the compiler vectorizes it with that tile's instruction set.
 */
__attribute__((always_inline))
static inline void fp_add_activations(const float *restrict z, ptrdiff_t n_words, float mean,
                                      float *restrict target)
{
    for (ptrdiff_t k = 0; k < n_words; k++) {
        float f = mean - z[k];
        target[k] += f > 0.0f ? f : 0.0f;
    }
}

/* AVX-512 tile: 14 patches x 32 words of squared distances in 28 registers. */
__attribute__((target("avx512f")))
static void fp_triangle_tile_avx512(const float *panels, ptrdiff_t n_panels, ptrdiff_t width,
                                    ptrdiff_t n_words, const float *rows, int n, float *distances,
                                    float **targets)
{
    const ptrdiff_t stride = n_panels * FP_PANEL_WORDS;
    const __m512 zero = _mm512_setzero_ps(), half = _mm512_set1_ps(0.5f);
    /* Floor for the squared distance: keeps rsqrt finite (0 * inf would be NaN). */
    const __m512 floor = _mm512_set1_ps(1e-30f);
    __m512 totals[FP_TILE_PATCHES];
    for (int j = 0; j < FP_TILE_PATCHES; j++)
        totals[j] = zero;
    for (ptrdiff_t p = 0; p < n_panels; p++) {
        const float *panel = panels + p * width * FP_PANEL_WORDS;
        __m512 low[FP_TILE_PATCHES], high[FP_TILE_PATCHES];
        for (int j = 0; j < FP_TILE_PATCHES; j++)
            low[j] = high[j] = zero;
        for (ptrdiff_t i = 0; i < width; i++) {
            __m512 words_low = _mm512_loadu_ps(panel + i * FP_PANEL_WORDS);
            __m512 words_high = _mm512_loadu_ps(panel + i * FP_PANEL_WORDS + 16);
            for (int j = 0; j < FP_TILE_PATCHES; j++) {
                __m512 value = _mm512_set1_ps(rows[j * width + i]);
                low[j] = _mm512_fmadd_ps(words_low, value, low[j]);
                high[j] = _mm512_fmadd_ps(words_high, value, high[j]);
            }
        }
        for (int j = 0; j < FP_TILE_PATCHES; j++) {
            __m512 squares[2] = {_mm512_max_ps(low[j], floor), _mm512_max_ps(high[j], floor)};
            for (int half_panel = 0; half_panel < 2; half_panel++) {
                __m512 square = squares[half_panel];
                __m512 root_inv = _mm512_rsqrt14_ps(square);
                __m512 z = _mm512_mul_ps(square, root_inv);
                /* Newton step for sqrt: z += z * (1/2 - z * root_inv / 2). */
                z = _mm512_fmadd_ps(z, _mm512_fnmadd_ps(z, _mm512_mul_ps(half, root_inv), half), z);
                _mm512_storeu_ps(distances + j * stride + p * FP_PANEL_WORDS + 16 * half_panel, z);
                totals[j] = _mm512_add_ps(totals[j], z);
            }
        }
    }
    for (int j = 0; j < n; j++)
        fp_add_activations(distances + j * stride, n_words,
                           _mm512_reduce_add_ps(totals[j]) / (float)n_words, targets[j]);
}

/* AVX2/FMA tile: 14 patches x 8 words of squared distances in 14 registers. */
__attribute__((target("avx2,fma")))
static void fp_triangle_tile_avx2(const float *panels, ptrdiff_t n_panels, ptrdiff_t width,
                                  ptrdiff_t n_words, const float *rows, int n, float *distances,
                                  float **targets)
{
    const ptrdiff_t stride = n_panels * FP_PANEL_WORDS;
    const __m256 zero = _mm256_setzero_ps();
    __m256 totals[FP_TILE_PATCHES];
    for (int j = 0; j < FP_TILE_PATCHES; j++)
        totals[j] = zero;
    for (ptrdiff_t p = 0; p < n_panels; p++) {
        const float *panel = panels + p * width * FP_PANEL_WORDS;
        for (int eighth = 0; eighth < FP_PANEL_WORDS; eighth += 8) {
            __m256 squares[FP_TILE_PATCHES];
            for (int j = 0; j < FP_TILE_PATCHES; j++)
                squares[j] = zero;
            for (ptrdiff_t i = 0; i < width; i++) {
                __m256 words = _mm256_loadu_ps(panel + i * FP_PANEL_WORDS + eighth);
                for (int j = 0; j < FP_TILE_PATCHES; j++)
                    squares[j] = _mm256_fmadd_ps(words, _mm256_broadcast_ss(rows + j * width + i), squares[j]);
            }
            for (int j = 0; j < FP_TILE_PATCHES; j++) {
                __m256 z = _mm256_sqrt_ps(_mm256_max_ps(squares[j], zero));
                _mm256_storeu_ps(distances + j * stride + p * FP_PANEL_WORDS + eighth, z);
                totals[j] = _mm256_add_ps(totals[j], z);
            }
        }
    }
    for (int j = 0; j < n; j++) {
        float lanes[8], total = 0.0f;
        _mm256_storeu_ps(lanes, totals[j]);
        for (int l = 0; l < 8; l++)
            total += lanes[l];
        fp_add_activations(distances + j * stride, n_words, total / (float)n_words, targets[j]);
    }
}
#endif

/* 1 when this CPU (and this build) can run the given kernel. */
static int fp_triangle_kernel_available(int kernel)
{
#if FP_HAVE_X86_TILES
    if (kernel == FP_KERNEL_AVX512)
        return __builtin_cpu_supports("avx512f");
    if (kernel == FP_KERNEL_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    (void)kernel;
#endif
    return 0;
}

/*
 * Add every patch's activations to its target row of sums with `kernel`,
 * one that fp_triangle_kernel_available accepts.
 *
 * tile_rows: scratch of FP_TILE_PATCHES * width floats (the last, partial
 * tile is copied there and zero-padded); distances: scratch of
 * FP_TILE_PATCHES * n_panels * FP_PANEL_WORDS floats.
 */
static void fp_add_triangle_activations(const float *panels, ptrdiff_t n_panels, ptrdiff_t width,
                                        ptrdiff_t n_words, const float *rows, ptrdiff_t n_rows,
                                        const ptrdiff_t *targets, float *sums, float *tile_rows,
                                        float *distances, int kernel)
{
#if FP_HAVE_X86_TILES
    float *tile_targets[FP_TILE_PATCHES];
    for (ptrdiff_t start = 0; start < n_rows; start += FP_TILE_PATCHES) {
        int n = n_rows - start < FP_TILE_PATCHES ? (int)(n_rows - start) : FP_TILE_PATCHES;
        const float *tile = rows + start * width;
        if (n < FP_TILE_PATCHES) {
            memset(tile_rows, 0, sizeof(float) * FP_TILE_PATCHES * width);
            memcpy(tile_rows, tile, sizeof(float) * n * width);
            tile = tile_rows;
        }
        for (int j = 0; j < n; j++)
            tile_targets[j] = sums + targets[start + j] * n_words;
        if (kernel == FP_KERNEL_AVX512)
            fp_triangle_tile_avx512(panels, n_panels, width, n_words, tile, n, distances, tile_targets);
        else
            fp_triangle_tile_avx2(panels, n_panels, width, n_words, tile, n, distances, tile_targets);
    }
#else
    (void)panels; (void)n_panels; (void)width; (void)n_words; (void)rows; (void)n_rows;
    (void)targets; (void)sums; (void)tile_rows; (void)distances; (void)kernel;
#endif
}

#endif
