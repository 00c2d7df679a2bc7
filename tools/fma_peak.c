/* The machine's FMA peak, as BENCHMARKS.md reports it: independent AVX-512
 * fused multiply-adds (16 accumulators, so the FMA units never wait on a
 * result), 2e9 a thread, on 1 and on 2 threads.
 *
 *   gcc -O3 -mavx512f -funroll-all-loops -fopenmp tools/fma_peak.c -o /tmp/fma && /tmp/fma
 *
 * Prints GFLOP/s (2 flops an FMA lane: 16 lanes × 2 = 32 flops an FMA). */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>

static double run(long n) {
    __m512 a[16], b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < n; k += 16)
        for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    float s = 0;
    for (int i = 0; i < 16; i++) s += _mm512_reduce_add_ps(a[i]);
    return s;
}

int main(void) {
    const long n = 2000000000L / 16 * 16; /* FMA instructions a thread */
    for (int t = 1; t <= 2; t++) {
        double best = 0;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = omp_get_wtime(), sink = 0;
#pragma omp parallel for num_threads(t) reduction(+ : sink)
            for (int i = 0; i < t; i++) sink += run(n);
            double secs = omp_get_wtime() - t0;
            double gf = 32.0 * n * t / secs / 1e9;
            if (gf > best) best = gf;
            if (sink == 42) printf(" ");
        }
        printf("%d thread(s): %.0f GFLOP/s (best of 3)\n", t, best);
    }
    return 0;
}
