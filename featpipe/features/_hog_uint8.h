/*
 * HOG cell sums of uint8 colour images with channel="max", row by row.
 *
 * The gradients are integers in [-255, 255]; a lookup table indexed by
 * |511 g_row + g_col| holds the rank of the pair's magnitude above the bits
 * of its orientation bin (hog_cells._uint8_table). Each channel's entry gets
 * its tie priority (2, 1, 0) inserted between rank and bin, so the largest
 * of the three entries is scikit-image's choice of channel. The keys, table
 * reads and maxima of a row are vector loops (gathers on AVX2 and AVX-512);
 * the magnitudes are then added to the cells one pixel at a time, in
 * row-major order, the order of numpy's bincount.
 */
#ifndef FEATPIPE_HOG_UINT8_H
#define FEATPIPE_HOG_UINT8_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "_hog_float.h" /* FP_HOG_CLONES, FP_HOG_INLINE */

/* Integer gradients of row r of one channel over the crop's columns. */
FP_HOG_INLINE void fp_hog_uint8_gradients(const uint8_t *image, ptrdiff_t height, ptrdiff_t width, ptrdiff_t r,
                                          int channel, ptrdiff_t n_cols, int32_t *restrict g_row,
                                          int32_t *restrict g_col)
{
    const uint8_t *row = image + r * width * 3 + channel;
    ptrdiff_t last = n_cols < width - 1 ? n_cols : width - 1;
    if (0 < r && r < height - 1)
        for (ptrdiff_t c = 0; c < n_cols; c++)
            g_row[c] = (int32_t)row[3 * c + 3 * width] - (int32_t)row[3 * c - 3 * width];
    else
        for (ptrdiff_t c = 0; c < n_cols; c++)
            g_row[c] = 0;
    g_col[0] = 0;
    for (ptrdiff_t c = 1; c < last; c++)
        g_col[c] = (int32_t)row[3 * c + 3] - (int32_t)row[3 * c - 3];
    for (ptrdiff_t c = last > 1 ? last : 1; c < n_cols; c++)
        g_col[c] = 0;
}

/*
 * Add the magnitude of every pixel of n images (height, width, 3) to its
 * cell and bin: sums (n, crop rows / cell rows, crop cols / cell cols, slots).
 * Returns 0, or -1 when out of memory.
 */
FP_HOG_CLONES
static int fp_hog_max_channel_cell_sums(const uint8_t *images, ptrdiff_t n, ptrdiff_t height, ptrdiff_t width,
                                        const int32_t *table, const double *magnitude_by_rank, int bin_bits,
                                        int channel_bits, ptrdiff_t cell_rows, ptrdiff_t cell_cols,
                                        ptrdiff_t crop_rows, ptrdiff_t crop_cols, ptrdiff_t slots, double *sums)
{
    const int32_t bin_mask = (1 << bin_bits) - 1, rank_shift = bin_bits + channel_bits;
    const ptrdiff_t cell_row_stride = (crop_cols / cell_cols) * slots;
    const ptrdiff_t image_sums = (crop_rows / cell_rows) * cell_row_stride;
    int32_t *buffers = malloc(sizeof(int32_t) * (size_t)(3 * crop_cols));
    ptrdiff_t *column_slot = malloc(sizeof(ptrdiff_t) * (size_t)crop_cols);
    int status = -1;
    if (buffers != NULL && column_slot != NULL) {
        int32_t *g_row = buffers, *g_col = buffers + crop_cols, *best = buffers + 2 * crop_cols;
        for (ptrdiff_t c = 0; c < crop_cols; c++)
            column_slot[c] = (c / cell_cols) * slots;
        for (ptrdiff_t i = 0; i < n; i++) {
            const uint8_t *image = images + i * height * width * 3;
            for (ptrdiff_t r = 0; r < crop_rows; r++) {
                for (ptrdiff_t c = 0; c < crop_cols; c++)
                    best[c] = 0;
                for (int channel = 0; channel < 3; channel++) {
                    const int32_t priority = (2 - channel) << bin_bits;
                    fp_hog_uint8_gradients(image, height, width, r, channel, crop_cols, g_row, g_col);
                    for (ptrdiff_t c = 0; c < crop_cols; c++) {
                        int32_t key = 511 * g_row[c] + g_col[c];
                        int32_t entry = table[abs(key)];
                        entry = ((entry & ~bin_mask) << channel_bits) | priority | (entry & bin_mask);
                        best[c] = entry > best[c] ? entry : best[c];
                    }
                }
                double *cell_row_sums = sums + i * image_sums + (r / cell_rows) * cell_row_stride;
                for (ptrdiff_t c = 0; c < crop_cols; c++)
                    cell_row_sums[column_slot[c] + (best[c] & bin_mask)] += magnitude_by_rank[best[c] >> rank_shift];
            }
        }
        status = 0;
    }
    free(buffers);
    free(column_slot);
    return status;
}

#endif
