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

/*
 * Integer gradients of row r over the crop's columns, channels interleaved
 * as in the image (index 3 c + channel), so every load is contiguous.
 */
FP_HOG_INLINE void fp_hog_uint8_gradients(const uint8_t *image, ptrdiff_t height, ptrdiff_t width, ptrdiff_t r,
                                          ptrdiff_t n_cols, int32_t *restrict g_row, int32_t *restrict g_col)
{
    const uint8_t *row = image + r * width * 3;
    const ptrdiff_t n_values = 3 * n_cols, last = 3 * (n_cols < width - 1 ? n_cols : width - 1);
    if (0 < r && r < height - 1)
        for (ptrdiff_t k = 0; k < n_values; k++)
            g_row[k] = (int32_t)row[k + 3 * width] - (int32_t)row[k - 3 * width];
    else
        for (ptrdiff_t k = 0; k < n_values; k++)
            g_row[k] = 0;
    for (ptrdiff_t k = 0; k < 3; k++)
        g_col[k] = 0;
    for (ptrdiff_t k = 3; k < last; k++)
        g_col[k] = (int32_t)row[k + 3] - (int32_t)row[k - 3];
    for (ptrdiff_t k = last > 3 ? last : 3; k < n_values; k++)
        g_col[k] = 0;
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
    int32_t *buffers = malloc(sizeof(int32_t) * (size_t)(13 * crop_cols));
    ptrdiff_t *column_slot = malloc(sizeof(ptrdiff_t) * (size_t)crop_cols);
    int status = -1;
    if (buffers != NULL && column_slot != NULL) {
        int32_t *g_row = buffers, *g_col = buffers + 3 * crop_cols, *entry = buffers + 6 * crop_cols;
        int32_t *priority = buffers + 9 * crop_cols, *best = buffers + 12 * crop_cols;
        for (ptrdiff_t k = 0; k < 3 * crop_cols; k++)
            priority[k] = (2 - (int32_t)(k % 3)) << bin_bits;
        for (ptrdiff_t c = 0; c < crop_cols; c++)
            column_slot[c] = (c / cell_cols) * slots;
        for (ptrdiff_t i = 0; i < n; i++) {
            const uint8_t *image = images + i * height * width * 3;
            for (ptrdiff_t r = 0; r < crop_rows; r++) {
                fp_hog_uint8_gradients(image, height, width, r, crop_cols, g_row, g_col);
                for (ptrdiff_t k = 0; k < 3 * crop_cols; k++) {
                    int32_t value = table[abs(511 * g_row[k] + g_col[k])];
                    entry[k] = ((value & ~bin_mask) << channel_bits) | priority[k] | (value & bin_mask);
                }
                for (ptrdiff_t c = 0; c < crop_cols; c++) {
                    int32_t first = entry[3 * c] > entry[3 * c + 1] ? entry[3 * c] : entry[3 * c + 1];
                    best[c] = first > entry[3 * c + 2] ? first : entry[3 * c + 2];
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
