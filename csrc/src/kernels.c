#include "neurec/nr_kernels.h"
#include "neurec/nr_simd.h"

#include <math.h>
#include <string.h>

NR_MULTIVERSION
float nr_dot(const float *a, const float *b, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++)
            acc[t] += a[i + t] * b[i + t];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

NR_MULTIVERSION
void nr_axpy(float *restrict y, const float *restrict x, float a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

NR_MULTIVERSION
void nr_dense_forward(float *restrict y, const float *restrict x, const float *restrict w,
                      const float *restrict b, int64_t rows, int64_t k, int64_t n)
{
    if (n == 1) {
        float b0 = b ? b[0] : 0.0f;
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * k;
            float acc[8] = {0};
            int64_t i = 0;
            for (; i + 8 <= k; i += 8)
                for (int t = 0; t < 8; t++)
                    acc[t] += xr[i + t] * w[i + t];
            float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            for (; i < k; i++)
                s += xr[i] * w[i];
            y[r] = s + b0;
        }
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        float *restrict yr = y + r * n;
        const float *xr = x + r * k;
        if (b)
            memcpy(yr, b, (size_t)n * sizeof *yr);
        else
            memset(yr, 0, (size_t)n * sizeof *yr);
        for (int64_t i = 0; i < k; i++) {
            float xi = xr[i];
            const float *restrict wi = w + i * n;
            for (int64_t j = 0; j < n; j++)
                yr[j] += xi * wi[j];
        }
    }
}

NR_MULTIVERSION
void nr_dense_backward(float *restrict gx, float *restrict gw, float *restrict gb,
                       const float *restrict gy, const float *restrict x, const float *restrict w,
                       int64_t rows, int64_t k, int64_t n)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *gyr = gy + r * n;
        const float *xr = x + r * k;
        if (gb)
            for (int64_t j = 0; j < n; j++)
                gb[j] += gyr[j];
        for (int64_t i = 0; i < k; i++) {
            float xi = xr[i];
            float *restrict gwi = gw + i * n;
            for (int64_t j = 0; j < n; j++)
                gwi[j] += xi * gyr[j];
        }
        if (gx) {
            float *gxr = gx + r * k;
            for (int64_t i = 0; i < k; i++) {
                const float *wi = w + i * n;
                float acc[8] = {0};
                int64_t j = 0;
                for (; j + 8 <= n; j += 8)
                    for (int t = 0; t < 8; t++)
                        acc[t] += wi[j + t] * gyr[j + t];
                float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
                for (; j < n; j++)
                    s += wi[j] * gyr[j];
                gxr[i] += s;
            }
        }
    }
}

static inline float sigmoidf(float z)
{
    /* Stable for both signs: exp of a non-positive number never overflows. */
    if (z >= 0.0f) {
        float e = expf(-z);
        return 1.0f / (1.0f + e);
    }
    float e = expf(z);
    return e / (1.0f + e);
}

void nr_act_forward(float *y, const float *x, enum nr_act act, int64_t rows, int64_t n)
{
    int64_t total = rows * n;
    switch (act) {
    case NR_ACT_LINEAR:
        if (y != x)
            memcpy(y, x, (size_t)total * sizeof *y);
        break;
    case NR_ACT_RELU:
        for (int64_t i = 0; i < total; i++)
            y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case NR_ACT_SIGMOID:
        for (int64_t i = 0; i < total; i++)
            y[i] = sigmoidf(x[i]);
        break;
    case NR_ACT_TANH:
        for (int64_t i = 0; i < total; i++)
            y[i] = tanhf(x[i]);
        break;
    case NR_ACT_SOFTMAX:
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * n;
            float *yr = y + r * n;
            float m = xr[0];
            for (int64_t j = 1; j < n; j++)
                m = xr[j] > m ? xr[j] : m;
            float s = 0.0f;
            for (int64_t j = 0; j < n; j++) {
                yr[j] = expf(xr[j] - m);
                s += yr[j];
            }
            float inv = 1.0f / s;
            for (int64_t j = 0; j < n; j++)
                yr[j] *= inv;
        }
        break;
    }
}

void nr_act_backward(float *gx, const float *gy, const float *y, enum nr_act act,
                     int64_t rows, int64_t n)
{
    int64_t total = rows * n;
    switch (act) {
    case NR_ACT_LINEAR:
        for (int64_t i = 0; i < total; i++)
            gx[i] += gy[i];
        break;
    case NR_ACT_RELU:
        for (int64_t i = 0; i < total; i++)
            gx[i] += y[i] > 0.0f ? gy[i] : 0.0f;
        break;
    case NR_ACT_SIGMOID:
        for (int64_t i = 0; i < total; i++)
            gx[i] += gy[i] * y[i] * (1.0f - y[i]);
        break;
    case NR_ACT_TANH:
        for (int64_t i = 0; i < total; i++)
            gx[i] += gy[i] * (1.0f - y[i] * y[i]);
        break;
    case NR_ACT_SOFTMAX:
        for (int64_t r = 0; r < rows; r++) {
            const float *gyr = gy + r * n, *yr = y + r * n;
            float *gxr = gx + r * n;
            float d = 0.0f;
            for (int64_t j = 0; j < n; j++)
                d += gyr[j] * yr[j];
            for (int64_t j = 0; j < n; j++)
                gxr[j] += yr[j] * (gyr[j] - d);
        }
        break;
    }
}
