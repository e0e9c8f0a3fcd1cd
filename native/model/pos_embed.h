// Fixed 2-D sin-cos position embedding, MAE layout (spec §1.4), computed on the host at init and
// uploaded with the other parameters.
#pragma once
#include <cstdint>

namespace cmae::model {

// out (grid_h·grid_w, D), D % 4 == 0: dims [0,Q) sin(col·ω), [Q,2Q) cos(col·ω), [2Q,3Q) sin(row·ω),
// [3Q,4Q) cos(row·ω), ω_d = 10000^(−d/Q), Q = D/4, computed in double and rounded to float. Row k
// is patch k: row = k / grid_w, col = k % grid_w. (The cls row of zeros is the caller's.)
void sincos_pos_embed_2d(float* out, int64_t grid_h, int64_t grid_w, int64_t D);

}  // namespace cmae::model
