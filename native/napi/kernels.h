// Registration of the `kernels` namespace: one function per op family, each defined in
// native/napi/kernels_<family>.cc. Kernel bindings are synchronous and write into output tensors
// the caller passes in (TypeScript allocates them when the user does not), llm.c style; they
// exist for tests, benchmarks and advanced users. Model-level work is async (see model bindings).
#pragma once
#include <napi.h>

namespace cmae::napi {

void RegisterActivationKernels(Napi::Env env, Napi::Object kernels);  // gelu, relu
void RegisterLinearKernels(Napi::Env env, Napi::Object kernels);      // sgemm, linear
void RegisterNormKernels(Napi::Env env, Napi::Object kernels);        // layernorm (+ fused residual), batchnorm
void RegisterAttentionKernels(Napi::Env env, Napi::Object kernels);   // multi-head attention
void RegisterPatchKernels(Napi::Env env, Napi::Object kernels);       // patchify, masking, unshuffle, pos-embed
void RegisterLossKernels(Napi::Env env, Napi::Object kernels);        // pooling, l2norm, norm-pix MSE, InfoNCE
void RegisterOptimKernels(Napi::Env env, Napi::Object kernels);       // AdamW, EMA, grad norm, clipping
void RegisterRngKernels(Napi::Env env, Napi::Object kernels);         // Philox draws
void RegisterDataKernels(Napi::Env env, Napi::Object kernels);        // batched augmentation (crop, flip, shift, colour)

}  // namespace cmae::napi
