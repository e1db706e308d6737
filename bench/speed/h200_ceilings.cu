// bench/speed/h200_ceilings.cu — measures the two ceilings behind gem::h200_peak (gem/speed/roofline.hpp):
// dense bf16 GEMM rate through cuBLAS and device-to-device copy bandwidth. Not part of the build (a
// one-off check, figures in bench/RESULTS.md); build and run on a GPU machine with
//   nvcc -O2 -arch=sm_90 -o h200_ceilings bench/speed/h200_ceilings.cu -lcublas && ./h200_ceilings
// Inputs are a constant bf16 pattern (0x3C3C); timings with CUDA events over 50 GEMMs / 10 copies.
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <cstdio>

int main() {
  const int n = 8192;
  const size_t elems = size_t{n} * n;
  __nv_bfloat16 *a, *b, *c;
  cudaMalloc(&a, elems * 2);
  cudaMalloc(&b, elems * 2);
  cudaMalloc(&c, elems * 2);
  cudaMemset(a, 0x3C, elems * 2);
  cudaMemset(b, 0x3C, elems * 2);
  cublasHandle_t h;
  cublasCreate(&h);
  const float alpha = 1, beta = 0;
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  float ms = 0;
  auto gemm = [&] {
    cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b, CUDA_R_16BF, n, &beta, c,
                 CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 5; ++i) gemm();
    const int iters = 50;
    cudaEventRecord(start);
    for (int i = 0; i < iters; ++i) gemm();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    cudaEventElapsedTime(&ms, start, stop);
    std::printf("bf16 gemm %d^3: %.1f TFLOP/s\n", n, 2.0 * n * n * n * iters / (ms * 1e-3) / 1e12);
  }
  const size_t bytes = size_t{4} << 30;
  char *x, *y;
  cudaMalloc(&x, bytes);
  cudaMalloc(&y, bytes);
  cudaMemcpy(y, x, bytes, cudaMemcpyDeviceToDevice);
  for (int round = 0; round < 3; ++round) {
    cudaEventRecord(start);
    for (int i = 0; i < 10; ++i) cudaMemcpy(y, x, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    cudaEventElapsedTime(&ms, start, stop);
    std::printf("d2d copy 4 GiB: %.2f TB/s (read+write)\n", 2.0 * bytes * 10 / (ms * 1e-3) / 1e12);
  }
  std::printf("%s\n", cudaGetErrorString(cudaGetLastError()));
}
