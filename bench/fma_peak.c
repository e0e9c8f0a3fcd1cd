/* FP32 FMA peak probe for bench/main.mjs: 12 independent accumulator chains of 512-bit (or 256-bit)
 * FMAs per thread, run on 1 thread and then on T threads at once (pthreads, so it does not share
 * an OpenMP pool with anything). Prints one JSON line:
 *   {"isa":"avx512","gflops1":..,"gflopsT":..,"threads":T}
 * Built on demand by the bench with the system C compiler; never part of the package build. */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int use512;
static long iters;
static volatile float sink;

__attribute__((target("avx512f"))) static double run512(long n) {
  __m512 a[12];
  const __m512 x = _mm512_set1_ps(0.9999999f), y = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps((float)i);
  for (long k = 0; k < n; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], x, y);
  }
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  sink = _mm512_reduce_add_ps(s);
  return (double)n * 12 * 16 * 2;
}

__attribute__((target("avx2,fma"))) static double run256(long n) {
  __m256 a[12];
  const __m256 x = _mm256_set1_ps(0.9999999f), y = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps((float)i);
  for (long k = 0; k < n; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], x, y);
  }
  __m256 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
  float t[8];
  _mm256_storeu_ps(t, s);
  sink = t[0];
  return (double)n * 12 * 8 * 2;
}

static void* worker(void* arg) {
  double* out = (double*)arg;
  const double t0 = now();
  const double flops = use512 ? run512(iters) : run256(iters);
  out[0] = flops;
  out[1] = now() - t0;
  return NULL;
}

static double measure(int threads) {
  pthread_t tid[64];
  double res[64][2];
  for (int t = 0; t < threads; ++t) pthread_create(&tid[t], NULL, worker, res[t]);
  double total = 0, longest = 0;
  for (int t = 0; t < threads; ++t) {
    pthread_join(tid[t], NULL);
    total += res[t][0];
    if (res[t][1] > longest) longest = res[t][1];
  }
  return total / longest / 1e9;
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  double seconds = argc > 2 ? atof(argv[2]) : 0.15;
  const char* isa = argc > 3 ? argv[3] : "auto";
  if (threads < 1) threads = 1;
  if (threads > 64) threads = 64;
  __builtin_cpu_init();
  use512 = strcmp(isa, "avx2") != 0 && __builtin_cpu_supports("avx512f");
  /* warm-up (clock ramp), then calibrate so one run takes about `seconds` */
  iters = 1000000;
  double t0 = now();
  worker((double[2]){0, 0});
  double dt = now() - t0;
  iters = (long)(iters * seconds / (dt > 1e-6 ? dt : 1e-6));
  if (iters < 1000) iters = 1000;
  double best1 = 0, bestT = 0;
  for (int rep = 0; rep < 3; ++rep) {
    double g = measure(1);
    if (g > best1) best1 = g;
  }
  for (int rep = 0; rep < 3; ++rep) {
    double g = measure(threads);
    if (g > bestT) bestT = g;
  }
  printf("{\"isa\":\"%s\",\"gflops1\":%.2f,\"gflopsT\":%.2f,\"threads\":%d}\n", use512 ? "avx512" : "avx2", best1, bestT, threads);
  return 0;
}
