/*
 * HOG cell sums from float values (grey levels, square roots), row by row.
 *
 * The arithmetic of scikit-image's hog on the float64 values numpy computes
 * from uint8 images, written so that the compiler vectorizes each step over
 * a row of pixels:
 *
 *   values     grey: fma(B', w2, fma(R', w0, G' w1)) with X' = X * (1/255),
 *              the rounding of rgb2gray's matrix product in OpenBLAS on
 *              x86-64 CPUs with FMA (featpipe checks it against rgb2gray
 *              once per process); its square root with transform_sqrt.
 *              Channels: X or sqrt(X).
 *   gradients  central differences, 0 on the border rows and columns.
 *   channel    the largest squared magnitude, the first on ties; pixels
 *              where two channels' squares are within 1e-12 of each other
 *              (and not of equal components) are redone one at a time with
 *              hypot, numpy's criterion.
 *   magnitude  hypot(g_col, g_row) by the algorithm of the GNU C library
 *              (Borges 2019, "An Improved Algorithm for hypot(a,b)", the
 *              correction without FMA: square root of the rounded sum, one
 *              correction from the exactly expanded residual), the function
 *              numpy's hypot calls on Linux. Our values are 0 or between
 *              2^-459 and 2^511, so its scaling branches never apply.
 *   bin        the angle is reduced to (0, 180) degrees (g_row > 0) and the
 *              bin is the number of edges below it: the angle is above edge
 *              k when g_row cos_k - g_col sin_k > 0. A pixel within 1e-9
 *              (relative) of an edge, or of 0 and 180 degrees, is marked
 *              FP_HOG_AMBIGUOUS: there the rounding of numpy's angle decides,
 *              and featpipe bins it with numpy. g_row == 0 is 0 or 180
 *              degrees: bin 0.
 *
 * Every step is IEEE arithmetic without contraction (the module is built
 * with -ffp-contract=off; -fno-math-errno and -fno-trapping-math let square
 * roots and selections vectorize without changing a result) and with
 * correctly rounded sqrt, division and fma, so the versions the compiler
 * makes for AVX-512, AVX2/FMA and baseline x86-64 (target_clones, GCC on
 * Linux) give the same bits.
 *
 * Layouts: image uint8 (height, width, 3); sums float64 (cell rows, cell
 * cols, slots); bins uint8 and magnitudes float64 (crop rows, crop cols).
 */
#ifndef FEATPIPE_HOG_FLOAT_H
#define FEATPIPE_HOG_FLOAT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define FP_HOG_AMBIGUOUS 255
#define FP_HOG_LANES 8 /* pixels binned together; row buffers are padded to a multiple */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FP_HOG_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FP_HOG_CLONES
#endif
#if defined(__GNUC__) || defined(__clang__)
#define FP_HOG_INLINE static inline __attribute__((always_inline))
#else
#define FP_HOG_INLINE static inline
#endif

typedef struct {
    int grey;                 /* one grey value per pixel instead of three channels */
    int take_sqrt;            /* square roots of the values */
    const double *edge_cos;   /* bin edges strictly inside (0, 180) degrees */
    const double *edge_sin;
    ptrdiff_t n_edges;
    ptrdiff_t cell_rows, cell_cols;
    ptrdiff_t crop_rows, crop_cols;
    ptrdiff_t slots;          /* bins per cell, the "no bin" slot included */
} fp_hog_setting;

/* Relative gap between squared magnitudes beyond which the hypot order is certain. */
static const double fp_hog_clear_gap = 1e-12;
/* Relative distance to a bin edge within which numpy bins the pixel. */
static const double fp_hog_edge_margin = 1e-9;

FP_HOG_INLINE double fp_hog_min(double a, double b)
{
    return b < a ? b : a;
}

/* hypot(x, y) as the GNU C library computes it, for the values described above. */
FP_HOG_INLINE double fp_hog_hypot(double x, double y)
{
    double ax = fabs(x), ay = fabs(y);
    double big = ax < ay ? ay : ax, small = ax < ay ? ax : ay;
    double h = sqrt(big * big + small * small);
    /* Both of glibc's corrections, then a choice: no branch, so every instruction set vectorizes it. */
    double near_delta = h - small, far_delta = h - big;
    double near_t1 = big * (2.0 * near_delta - big), near_t2 = (near_delta - 2.0 * (big - small)) * near_delta;
    double far_t1 = 2.0 * far_delta * (big - 2.0 * small);
    double far_t2 = (4.0 * far_delta - small) * small + far_delta * far_delta;
    int near = h <= 2.0 * small;
    h -= ((near ? near_t1 : far_t1) + (near ? near_t2 : far_t2)) / (2.0 * h);
    return small <= big * 0x1p-54 ? big + small : h;
}

/* Values of one image, plane by plane: plane[channel][row][col]; levels[v] is a channel's value. */
FP_HOG_INLINE void fp_hog_fill_values(const uint8_t *image, ptrdiff_t n_pixels, int grey, int take_sqrt,
                               const double *weights, const double *levels, double *plane)
{
    const double unit = 1.0 / 255.0;
    if (grey) {
        for (ptrdiff_t p = 0; p < n_pixels; p++) {
            double value = fma((double)image[3 * p + 2] * unit, weights[2],
                               fma((double)image[3 * p] * unit, weights[0], (double)image[3 * p + 1] * unit * weights[1]));
            plane[p] = take_sqrt ? sqrt(value) : value;
        }
        return;
    }
    for (int channel = 0; channel < 3; channel++)
        for (ptrdiff_t p = 0; p < n_pixels; p++)
            plane[channel * n_pixels + p] = levels[image[3 * p + channel]];
}

/* Gradients of row r of each plane over the crop's columns: channel k at [k * stride]. */
FP_HOG_INLINE void fp_hog_row_gradients(const double *plane, ptrdiff_t n_channels, ptrdiff_t height, ptrdiff_t width,
                                 ptrdiff_t r, ptrdiff_t n_cols, ptrdiff_t stride, double *restrict g_row,
                                 double *restrict g_col)
{
    ptrdiff_t last = n_cols < width - 1 ? n_cols : width - 1;
    for (ptrdiff_t channel = 0; channel < n_channels; channel++) {
        const double *row = plane + channel * height * width + r * width;
        double *rows = g_row + channel * stride, *cols = g_col + channel * stride;
        if (0 < r && r < height - 1)
            for (ptrdiff_t c = 0; c < n_cols; c++)
                rows[c] = row[c + width] - row[c - width];
        else
            for (ptrdiff_t c = 0; c < n_cols; c++)
                rows[c] = 0.0;
        cols[0] = 0.0;
        for (ptrdiff_t c = 1; c < last; c++)
            cols[c] = row[c + 1] - row[c - 1];
        for (ptrdiff_t c = last > 1 ? last : 1; c < n_cols; c++)
            cols[c] = 0.0;
    }
}

/* Whether two channels' squared magnitudes s, t leave the order of their hypot values open. */
FP_HOG_INLINE int32_t fp_hog_near(double s, double t, double row_s, double col_s, double row_t, double col_t)
{
    int32_t same = (fabs(row_s) == fabs(row_t)) & (fabs(col_s) == fabs(col_t));
    return (fabs(s - t) <= (s < t ? t : s) * fp_hog_clear_gap) & !same;
}

/*
 * Per pixel of a row, the gradient of the channel of largest squared
 * magnitude (first on ties; channel k at [k * stride] of g_row and g_col)
 * into best_row, best_col; near[c] says the order of squares does not settle
 * it. Returns whether any pixel is near.
 */
FP_HOG_INLINE int fp_hog_choose_channel(ptrdiff_t n_cols, ptrdiff_t stride, const double *restrict g_row,
                                        const double *restrict g_col, double *restrict best_row,
                                        double *restrict best_col, int32_t *restrict near)
{
    const double *r1 = g_row + stride, *c1 = g_col + stride, *r2 = g_row + 2 * stride, *c2 = g_col + 2 * stride;
    int32_t any_near = 0;
    for (ptrdiff_t c = 0; c < n_cols; c++) {
        double s0 = g_row[c] * g_row[c] + g_col[c] * g_col[c];
        double s1 = r1[c] * r1[c] + c1[c] * c1[c];
        double s2 = r2[c] * r2[c] + c2[c] * c2[c];
        near[c] = fp_hog_near(s0, s1, g_row[c], g_col[c], r1[c], c1[c])
                  | fp_hog_near(s0, s2, g_row[c], g_col[c], r2[c], c2[c])
                  | fp_hog_near(s1, s2, r1[c], c1[c], r2[c], c2[c]);
        int take1 = s1 > s0;
        double best = take1 ? s1 : s0;
        double row = take1 ? r1[c] : g_row[c], col = take1 ? c1[c] : g_col[c];
        int take2 = s2 > best;
        best_row[c] = take2 ? r2[c] : row;
        best_col[c] = take2 ? c2[c] : col;
        any_near |= near[c];
    }
    return any_near;
}

/* numpy's choice for one pixel: the first channel of largest hypot(g_row, g_col); channel k at [k * stride]. */
static void fp_hog_choose_exactly(const double *channel_row, const double *channel_col, ptrdiff_t stride,
                                  double *g_row, double *g_col)
{
    ptrdiff_t best = 0;
    for (ptrdiff_t channel = 1; channel < 3; channel++)
        if (fp_hog_hypot(channel_row[channel * stride], channel_col[channel * stride])
            > fp_hog_hypot(channel_row[best * stride], channel_col[best * stride]))
            best = channel;
    *g_row = channel_row[best * stride];
    *g_col = channel_col[best * stride];
}

/* Row buffers of the binning, each `stride` long. */
typedef struct {
    double *up_row, *up_col, *margin, *closest, *count;
} fp_hog_bin_work;

/*
 * Bin (or FP_HOG_AMBIGUOUS) and magnitude of every pixel of a row; the row
 * buffers are `stride` long, a multiple of FP_HOG_LANES, and padded with zero
 * gradients (bin 0). Returns whether any pixel is ambiguous.
 */
FP_HOG_INLINE int fp_hog_bin_row(const fp_hog_setting *setting, ptrdiff_t stride, const double *restrict g_row,
                          const double *restrict g_col, const fp_hog_bin_work *work, double *restrict magnitude,
                          int32_t *restrict bins)
{
    double *restrict up_row = work->up_row, *restrict up_col = work->up_col, *restrict margin = work->margin;
    double *restrict closest = work->closest, *restrict count = work->count;
    int any_ambiguous = 0;
    for (ptrdiff_t c = 0; c < stride; c++) {
        up_row[c] = g_row[c] < 0 ? -g_row[c] : g_row[c];
        up_col[c] = g_row[c] < 0 ? -g_col[c] : g_col[c];
        margin[c] = fp_hog_edge_margin * (up_row[c] + fabs(up_col[c]));
        closest[c] = up_row[c];
        count[c] = 0.0;
        magnitude[c] = fp_hog_hypot(g_col[c], g_row[c]);
    }
    const double *edge_cos = setting->edge_cos, *edge_sin = setting->edge_sin;
    ptrdiff_t k = 0;
    /* Four edges per pass over the row: a quarter of the loads and stores of closest and count. */
    for (; k + 4 <= setting->n_edges; k += 4)
        for (ptrdiff_t c = 0; c < stride; c++) {
            double cross0 = up_row[c] * edge_cos[k] - up_col[c] * edge_sin[k];
            double cross1 = up_row[c] * edge_cos[k + 1] - up_col[c] * edge_sin[k + 1];
            double cross2 = up_row[c] * edge_cos[k + 2] - up_col[c] * edge_sin[k + 2];
            double cross3 = up_row[c] * edge_cos[k + 3] - up_col[c] * edge_sin[k + 3];
            double near01 = fp_hog_min(fabs(cross0), fabs(cross1)), near23 = fp_hog_min(fabs(cross2), fabs(cross3));
            closest[c] = fp_hog_min(closest[c], fp_hog_min(near01, near23));
            count[c] += (cross0 > 0 ? 1.0 : 0.0) + (cross1 > 0 ? 1.0 : 0.0) + (cross2 > 0 ? 1.0 : 0.0)
                        + (cross3 > 0 ? 1.0 : 0.0);
        }
    for (; k < setting->n_edges; k++)
        for (ptrdiff_t c = 0; c < stride; c++) {
            double cross = up_row[c] * edge_cos[k] - up_col[c] * edge_sin[k];
            closest[c] = fp_hog_min(closest[c], fabs(cross));
            count[c] += cross > 0 ? 1.0 : 0.0;
        }
    for (ptrdiff_t c = 0; c < stride; c++) {
        double bin = closest[c] <= margin[c] ? (double)FP_HOG_AMBIGUOUS : count[c];
        bins[c] = (int32_t)(g_row[c] == 0 ? 0.0 : bin);
    }
    for (ptrdiff_t c = 0; c < stride; c++)
        any_ambiguous |= bins[c] == FP_HOG_AMBIGUOUS;
    return any_ambiguous;
}

/* Work space of one call: the values of an image and one row of everything else. */
typedef struct {
    double levels[256];      /* a channel's value at each uint8 level */
    double *plane;
    ptrdiff_t stride;        /* row buffer length: the crop's columns padded to FP_HOG_LANES */
    double *channel_row;     /* gradients of the row, channel k at [k * stride] */
    double *channel_col;
    double *best_row;        /* the gradient of the chosen channel */
    double *best_col;
    double *magnitude;
    fp_hog_bin_work binning;
    int32_t *near;
    ptrdiff_t *column_slot;  /* offset of each column's cell in a row of cell sums */
    int32_t *row_bins;
} fp_hog_work;

/* Replace the channel choice by numpy's where near[c] says squares do not settle it. */
static void fp_hog_settle_near_ties(const fp_hog_work *work, ptrdiff_t n_cols)
{
    for (ptrdiff_t c = 0; c < n_cols; c++)
        if (work->near[c]) {
            double chosen_row, chosen_col;
            fp_hog_choose_exactly(work->channel_row + c, work->channel_col + c, work->stride, &chosen_row,
                                  &chosen_col);
            work->best_row[c] = chosen_row;
            work->best_col[c] = chosen_col;
        }
}

/*
 * Cell sums of one image, added in row-major pixel order. From the first
 * ambiguous pixel on, bins and magnitudes are stored instead (with the
 * ambiguous pixels' flat indices, offset by `first_pixel`, and gradients
 * listed) and *resume_at says where the sums stopped. Returns the number of
 * pixels listed.
 */
FP_HOG_CLONES
static ptrdiff_t fp_hog_float_image(const fp_hog_setting *setting, const fp_hog_work *work, const uint8_t *image,
                                    ptrdiff_t height, ptrdiff_t width, const double *weights, double *sums,
                                    uint8_t *bins, double *magnitudes, ptrdiff_t *resume_at, ptrdiff_t first_pixel,
                                    ptrdiff_t *ambiguous_pixels, double *ambiguous_gradients)
{
    const ptrdiff_t n_channels = setting->grey ? 1 : 3, n_cols = setting->crop_cols;
    const ptrdiff_t cell_row_stride = (n_cols / setting->cell_cols) * setting->slots;
    /* The chosen gradients: channel 0's own for grey values. */
    const double *chosen_row = setting->grey ? work->channel_row : work->best_row;
    const double *chosen_col = setting->grey ? work->channel_col : work->best_col;
    const double *magnitude = work->magnitude;
    const int32_t *row_bins = work->row_bins;
    ptrdiff_t n_ambiguous = 0;
    int deferred = 0;
    *resume_at = setting->crop_rows * n_cols;
    fp_hog_fill_values(image, height * width, setting->grey, setting->take_sqrt, weights, work->levels,
                       work->plane);
    for (ptrdiff_t r = 0; r < setting->crop_rows; r++) {
        fp_hog_row_gradients(work->plane, n_channels, height, width, r, n_cols, work->stride, work->channel_row,
                             work->channel_col);
        if (n_channels == 3 && fp_hog_choose_channel(n_cols, work->stride, work->channel_row, work->channel_col,
                                                     work->best_row, work->best_col, work->near))
            fp_hog_settle_near_ties(work, n_cols);
        int any_ambiguous = fp_hog_bin_row(setting, work->stride, chosen_row, chosen_col, &work->binning,
                                           work->magnitude, work->row_bins);
        double *cell_row_sums = sums + (r / setting->cell_rows) * cell_row_stride;
        if (!deferred && !any_ambiguous) {
            for (ptrdiff_t c = 0; c < n_cols; c++)
                cell_row_sums[work->column_slot[c] + row_bins[c]] += magnitude[c];
            continue;
        }
        for (ptrdiff_t c = 0; c < n_cols; c++) {
            ptrdiff_t at = r * n_cols + c;
            if (row_bins[c] == FP_HOG_AMBIGUOUS) {
                if (!deferred) {
                    deferred = 1;
                    *resume_at = at;
                }
                ambiguous_pixels[n_ambiguous] = first_pixel + at;
                ambiguous_gradients[2 * n_ambiguous] = chosen_row[c];
                ambiguous_gradients[2 * n_ambiguous + 1] = chosen_col[c];
                n_ambiguous++;
            }
            if (deferred) {
                bins[at] = (uint8_t)row_bins[c];
                magnitudes[at] = magnitude[c];
            } else {
                cell_row_sums[work->column_slot[c] + row_bins[c]] += magnitude[c];
            }
        }
    }
    return n_ambiguous;
}

/*
 * fp_hog_float_image for each of n images (height, width, 3), their sums,
 * bins, magnitudes and resume_at one after the other. Returns the number of
 * pixels listed, or -1 when out of memory.
 */
static ptrdiff_t fp_hog_float_cell_sums(const fp_hog_setting *setting, const uint8_t *images, ptrdiff_t n,
                                        ptrdiff_t height, ptrdiff_t width, const double *weights, double *sums,
                                        uint8_t *bins, double *magnitudes, ptrdiff_t *resume_at,
                                        ptrdiff_t *ambiguous_pixels, double *ambiguous_gradients)
{
    const ptrdiff_t n_channels = setting->grey ? 1 : 3, n_cols = setting->crop_cols;
    const ptrdiff_t stride = (n_cols + FP_HOG_LANES - 1) / FP_HOG_LANES * FP_HOG_LANES;
    const ptrdiff_t crop_pixels = setting->crop_rows * n_cols;
    const ptrdiff_t image_sums = (setting->crop_rows / setting->cell_rows) * (n_cols / setting->cell_cols)
                                 * setting->slots;
    fp_hog_work work;
    /* Zeroed: the padding of the row buffers stays a zero gradient. */
    double *doubles = calloc((size_t)(height * width * n_channels + 14 * stride), sizeof(double));
    int32_t *near = malloc(sizeof(int32_t) * (size_t)n_cols);
    ptrdiff_t *column_slot = malloc(sizeof(ptrdiff_t) * (size_t)n_cols);
    int32_t *row_bins = malloc(sizeof(int32_t) * (size_t)stride);
    ptrdiff_t n_ambiguous = -1;
    if (doubles != NULL && near != NULL && column_slot != NULL && row_bins != NULL) {
        for (int level = 0; level < 256; level++)
            work.levels[level] = setting->take_sqrt ? sqrt((double)level) : (double)level;
        work.plane = doubles;
        work.stride = stride;
        work.channel_row = doubles + height * width * n_channels;
        work.channel_col = work.channel_row + 3 * stride;
        work.best_row = work.channel_col + 3 * stride;
        work.best_col = work.best_row + stride;
        work.magnitude = work.best_col + stride;
        work.binning.up_row = work.magnitude + stride;
        work.binning.up_col = work.binning.up_row + stride;
        work.binning.margin = work.binning.up_col + stride;
        work.binning.closest = work.binning.margin + stride;
        work.binning.count = work.binning.closest + stride;
        work.near = near;
        work.column_slot = column_slot;
        work.row_bins = row_bins;
        for (ptrdiff_t c = 0; c < n_cols; c++)
            column_slot[c] = (c / setting->cell_cols) * setting->slots;
        n_ambiguous = 0;
        for (ptrdiff_t i = 0; i < n; i++)
            n_ambiguous += fp_hog_float_image(setting, &work, images + i * height * width * 3, height, width, weights,
                                              sums + i * image_sums, bins + i * crop_pixels,
                                              magnitudes + i * crop_pixels, resume_at + i, i * crop_pixels,
                                              ambiguous_pixels + n_ambiguous, ambiguous_gradients + 2 * n_ambiguous);
    }
    free(doubles);
    free(near);
    free(column_slot);
    free(row_bins);
    return n_ambiguous;
}

/* Grey levels of one image as fp_hog_float_image computes them. */
static void fp_hog_grey_values(const uint8_t *image, ptrdiff_t n_pixels, const double *weights, double *grey)
{
    fp_hog_fill_values(image, n_pixels, 1, 0, weights, NULL, grey);
}

#endif
